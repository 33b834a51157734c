#include "aed_frontend.h"

#include <string.h>

/* Negative values are shifted right below; that must floor, as in numpy (gcc, clang, armcc do). */
#if (-1 >> 1) != -1
#error "aed_frontend needs arithmetic right shifts of negative integers"
#endif

#define AED_FFT_HALF (AED_FE_FFT_SIZE / 2)
#define AED_SIN_OFFSET (AED_FE_FFT_SIZE - AED_FE_FFT_SIZE / 4) /* sin(k) = cos(k - N/4) */
#define AED_Q30_HALF (1LL << 29)
#define AED_POWER_SHIFT 16
#define AED_LOG_FRAC_BITS 16

/* Value bounds behind the integer widths below. S = sum(window) < 2^28 (model_dev/frontend.py
 * refuses longer windows; 2^22.7 by default). |v| <= w (|x << s| <= 32768), so every FFT value, a
 * partial DFT of the frame, has |re|, |im| <= sum|v| <= S (plus a few units of rounding): int32.
 * Q30 products c * re reach 2^58 and need 64 bits (one SMULL/SMLAL each on Cortex-M). */

/* (re + j im) * (c - j s) with Q30 twiddles; each component rounded once. ns = -s, so both
 * components are two multiply-accumulates (|s| <= 2^30: -s does not overflow). */
static inline void aed_rotate(int32_t *re, int32_t *im, int32_t c, int32_t s, int32_t ns)
{
    const int64_t r = (int64_t)c * *re + (int64_t)s * *im + AED_Q30_HALF;
    const int64_t i = (int64_t)c * *im + (int64_t)ns * *re + AED_Q30_HALF;
    *re = (int32_t)(r >> 30);
    *im = (int32_t)(i >> 30);
}

/* One radix-4 butterfly on (ar, ai), written back to the complex values 0, q, 2q, 3q of z. */
static inline void aed_radix4(int32_t *z, size_t q, const int32_t *ar, const int32_t *ai)
{
    const int32_t t0r = ar[0] + ar[2], t0i = ai[0] + ai[2];
    const int32_t t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
    const int32_t t2r = ar[1] + ar[3], t2i = ai[1] + ai[3];
    const int32_t t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
    z[0] = t0r + t2r;             z[1] = t0i + t2i;
    z[2 * q] = t1r + t3i;         z[2 * q + 1] = t1i - t3r;
    z[4 * q] = t0r - t2r;         z[4 * q + 1] = t0i - t2i;
    z[6 * q] = t1r - t3i;         z[6 * q + 1] = t1i + t3r;
}

/* One radix-4 decimation-in-time stage (sub-DFTs of length q -> 4q) on z = interleaved re, im.
 * Always called with a constant q, so every offset is an immediate. Butterfly offset j is the
 * outer loop: the three twiddles W^(m j N/4q) of an offset are loaded once for all blocks, and
 * j = 0 (twiddle 1, exact) needs no rotation. Butterflies are independent integer operations, so
 * any order gives the same values. */
static inline void aed_fft_stage(int32_t *z, const size_t q)
{
    const size_t span = 4 * q, step = AED_FE_FFT_SIZE / span;
    size_t i, j, m;
    for (i = 0; i < AED_FFT_HALF; i += span) {
        int32_t *p = &z[2 * i], ar[4], ai[4];
        for (m = 0; m < 4; m++) {
            ar[m] = p[2 * m * q];
            ai[m] = p[2 * m * q + 1];
        }
        aed_radix4(p, q, ar, ai);
    }
    for (j = 1; j < q; j++) {
        int32_t c[4], s[4], ns[4];
        for (m = 1; m < 4; m++) { /* m j step < 3N/4: no wrap for c */
            c[m] = aed_fe_cos_q30[m * j * step];
            s[m] = aed_fe_cos_q30[(m * j * step + AED_SIN_OFFSET) % AED_FE_FFT_SIZE];
            ns[m] = -s[m];
        }
        for (i = j; i < AED_FFT_HALF; i += span) {
            int32_t *p = &z[2 * i], ar[4], ai[4];
            for (m = 0; m < 4; m++) {
                ar[m] = p[2 * m * q];
                ai[m] = p[2 * m * q + 1];
            }
            for (m = 1; m < 4; m++) {
                aed_rotate(&ar[m], &ai[m], c[m], s[m], ns[m]);
            }
            aed_radix4(p, q, ar, ai);
        }
    }
}

/* Radix-4 FFT of digit-reversed input, in place, no scaling. N/2 = 4^k (model_dev/frontend.py
 * checks), so the stages have sub-DFT lengths q = 1, 4, ..., N/8: each called with a constant q. */
static void aed_fft(int32_t *z)
{
#if AED_FFT_HALF > 16384
#error "aed_fft: FFT sizes above 32768 need more stages here"
#endif
#if AED_FFT_HALF >= 4
    aed_fft_stage(z, 1);
#endif
#if AED_FFT_HALF >= 16
    aed_fft_stage(z, 4);
#endif
#if AED_FFT_HALF >= 64
    aed_fft_stage(z, 16);
#endif
#if AED_FFT_HALF >= 256
    aed_fft_stage(z, 64);
#endif
#if AED_FFT_HALF >= 1024
    aed_fft_stage(z, 256);
#endif
#if AED_FFT_HALF >= 4096
    aed_fft_stage(z, 1024);
#endif
#if AED_FFT_HALF >= 16384
    aed_fft_stage(z, 4096);
#endif
}

/* v = ((x << s) * w + 2^14) >> 15 = (x w + 2^(14 - s)) >> (15 - s) exactly (numerator and
 * denominator divided by 2^s; for s = 15 the rounding term 2^-1 floors to 0). |x w| < 2^30. */
static inline int32_t aed_windowed(const int16_t *x, size_t n, int32_t round, int rshift)
{
    return ((int32_t)x[n] * aed_fe_window_q15[n] + round) >> rshift;
}

/* Block normalisation, window, real FFT and power; returns the normalisation shift s. */
static int aed_power_spectrum(aed_frontend_t *fe, const int16_t *x)
{
    int32_t hi = 0, lo = 0, peak, round, *z = fe->z;
    int shift = 0, rshift;
    size_t n, k;
    for (n = 0; n < AED_FE_WINDOW_LENGTH; n++) { /* peak = max |x| = max(max x, -min x) */
        hi = x[n] > hi ? x[n] : hi;
        lo = x[n] < lo ? x[n] : lo;
    }
    peak = hi > -lo ? hi : -lo;
    while (shift < 15 && (peak << (shift + 1)) <= 32768) {
        shift++;
    }
    round = shift < 15 ? (int32_t)1 << (14 - shift) : 0;
    rshift = 15 - shift;
    /* z[n] = v[2n] + j v[2n+1] goes to position rev[n] (digit reversal is its own inverse);
     * v is zero past the window. */
    for (n = 0; n < AED_FE_WINDOW_LENGTH / 2; n++) {
        int32_t *d = &z[2 * aed_fe_digit_reverse[n]];
        d[0] = aed_windowed(x, 2 * n, round, rshift);
        d[1] = aed_windowed(x, 2 * n + 1, round, rshift);
    }
#if AED_FE_WINDOW_LENGTH % 2
    z[2 * aed_fe_digit_reverse[n]] = aed_windowed(x, 2 * n, round, rshift);
    z[2 * aed_fe_digit_reverse[n] + 1] = 0;
    n++;
#endif
    for (; n < AED_FFT_HALF; n++) {
        z[2 * aed_fe_digit_reverse[n]] = 0;
        z[2 * aed_fe_digit_reverse[n] + 1] = 0;
    }
    aed_fft(z);
    /* Split: Y[k] = 2 X[k] = (Z[k] + conj Z[M-k]) - j W^k (Z[k] - conj Z[M-k]). With |re|, |im|
     * <= S: |rr|, |ri| <= 2S, the rotation <= 2 sqrt(2) S, so |yr|, |yi| <= (2 + 2 sqrt(2)) S
     * < 2^30.3 (int32), and yr^2 + yi^2 < 2^61.6 (int64). */
    for (k = 0; k <= AED_FFT_HALF; k++) {
        const int32_t *za = &z[2 * (k % AED_FFT_HALF)];
        const int32_t *zb = &z[2 * ((AED_FFT_HALF - k) % AED_FFT_HALF)];
        const int32_t s = aed_fe_cos_q30[(k + AED_SIN_OFFSET) % AED_FE_FFT_SIZE];
        int32_t rr = za[1] + zb[1], ri = zb[0] - za[0], yr, yi;
        aed_rotate(&rr, &ri, aed_fe_cos_q30[k], s, -s);
        yr = za[0] + zb[0] + rr;
        yi = za[1] - zb[1] + ri;
        fe->power[k] = (uint32_t)(((int64_t)yr * yr + (int64_t)yi * yi) >> AED_POWER_SHIFT);
    }
    return shift;
}

static int aed_bit_length(uint64_t x)
{
#if defined(__GNUC__)
    return x ? 64 - __builtin_clzll(x) : 0;
#else
    int n = 0;
    while (x) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* q = round(log2_steps * (log2 E - 2 s)) - log_offset, clamped to int8; E == 0 gives -128. */
static int8_t aed_log_compress(uint64_t e, int shift)
{
    int msb;
    uint32_t mantissa;
    int32_t log2_q16, q;
    if (e == 0) {
        return -128;
    }
    msb = aed_bit_length(e) - 1;
    mantissa = (uint32_t)(msb >= 8 ? e >> (msb - 8) : e << (8 - msb)) & 255u;
    log2_q16 = ((int32_t)msb << AED_LOG_FRAC_BITS) + (int32_t)aed_fe_log2_q16[mantissa] -
               ((int32_t)(2 * shift) << AED_LOG_FRAC_BITS);
    q = ((AED_FE_LOG2_STEPS * log2_q16 + (1 << (AED_LOG_FRAC_BITS - 1))) >> AED_LOG_FRAC_BITS) -
        AED_FE_LOG_OFFSET;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

void aed_frontend_init(aed_frontend_t *fe)
{
    memset(fe->history, 0, sizeof fe->history);
    fe->fill = 0;
}

void aed_frontend_frame(aed_frontend_t *fe, const int16_t *samples, int8_t *out)
{
    const int shift = aed_power_spectrum(fe, samples);
    size_t m, i;
    for (m = 0; m < AED_FE_N_MELS; m++) {
        const int16_t *w = &aed_fe_mel_weights[aed_fe_mel_offset[m]];
        const uint32_t *p = &fe->power[aed_fe_mel_start[m]];
        uint64_t e = 0;
        for (i = 0; i < (size_t)aed_fe_mel_length[m]; i++) {
            e += (uint64_t)(uint32_t)w[i] * p[i];
        }
        out[m] = aed_log_compress(e, shift);
    }
}

size_t aed_frontend_feed(aed_frontend_t *fe, const int16_t *samples, size_t n, int8_t *out,
                         int *ready)
{
    size_t take = AED_FE_WINDOW_LENGTH - fe->fill;
    take = n < take ? n : take;
    memcpy(&fe->history[fe->fill], samples, take * sizeof samples[0]);
    fe->fill += take;
    *ready = fe->fill == AED_FE_WINDOW_LENGTH;
    if (*ready) {
        aed_frontend_frame(fe, fe->history, out);
        memmove(fe->history, &fe->history[AED_FE_HOP_LENGTH],
                (AED_FE_WINDOW_LENGTH - AED_FE_HOP_LENGTH) * sizeof fe->history[0]);
        fe->fill = AED_FE_WINDOW_LENGTH - AED_FE_HOP_LENGTH;
    }
    return take;
}

size_t aed_frontend_n_frames(size_t n_samples)
{
    return n_samples < AED_FE_WINDOW_LENGTH
               ? 0
               : 1 + (n_samples - AED_FE_WINDOW_LENGTH) / AED_FE_HOP_LENGTH;
}

size_t aed_frontend_clip(aed_frontend_t *fe, const int16_t *samples, size_t n, int8_t *out)
{
    const size_t frames = aed_frontend_n_frames(n);
    size_t t;
    aed_frontend_init(fe);
    for (t = 0; t < frames; t++) {
        aed_frontend_frame(fe, &samples[t * AED_FE_HOP_LENGTH], &out[t * AED_FE_N_MELS]);
    }
    return frames;
}
