#include "aed_frontend.h"

#include <string.h>

/* Negative values are shifted right below; that must floor, as in numpy (gcc, clang, armcc do). */
#if (-1 >> 1) != -1
#error "aed_frontend needs arithmetic right shifts of negative integers"
#endif

/* The Cortex-M4/M7/M33 DSP extension (SIMD on 16-bit halves of a word) where the compiler has
 * it, little-endian; elsewhere (the host) plain C with the same results. */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(__ARM_BIG_ENDIAN)
#include <arm_acle.h>
#define AED_FE_DSP 1
#else
#define AED_FE_DSP 0
#endif

/* Unroll the next loop twice: half the loop control of the short loops it marks (measured on
 * Cortex-M4). GCC 8 and up; other compilers build the loop as written. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define AED_UNROLL2 _Pragma("GCC unroll 2")
#else
#define AED_UNROLL2
#endif

#define AED_FFT_HALF (AED_FE_FFT_SIZE / 2)
#define AED_POWER_SHIFT 16

/* Value bounds behind the integer widths below. S = sum(window) < 2^28 (model_dev/frontend.py
 * refuses longer windows; 2^22.7 by default). |v| <= w (|x << s| <= 32768), so every FFT value, a
 * partial DFT of the frame, has |re|, |im| <= sum|v| <= S (plus a few units of rounding).
 * The FFT keeps its data at 4 times their value ("x4", |4 re| <= 4 S < 2^30: still int32): then a
 * component of a rotation, floor((c re + s im + 2^29) / 2^30) with Q30 twiddles, is
 * floor((acc + 2^31) / 2^32) for acc = c (4 re) + s (4 im) (64 bits: one SMULL, one SMLAL): the
 * high word of acc plus bit 31 of its low word, one ADD with a shifted operand on Cortex-M. The
 * rotation's result is at 1x; the butterfly multiplies it by 4 inside its adds (shifted operands
 * again, no extra instructions). */

/* floor((acc + 2^31) / 2^32). */
static inline int32_t aed_round_q32(int64_t acc)
{
    return (int32_t)(acc >> 32) + (int32_t)((uint32_t)acc >> 31);
}

/* (re + j im) * (c - j s) for x4 data, each component rounded once, result at 1x. ns = -s, so
 * both components are two multiply-accumulates (|s| <= 2^30: -s does not overflow). */
static inline void aed_rotate_x4(int32_t *re, int32_t *im, int32_t c, int32_t s, int32_t ns)
{
    const int32_t re4 = *re, im4 = *im;
    *re = aed_round_q32((int64_t)c * re4 + (int64_t)s * im4);
    *im = aed_round_q32((int64_t)c * im4 + (int64_t)ns * re4);
}

#if AED_FE_DSP
/* Two int16 at p as one word, p[0] in the low half (any alignment: LDR allows it). */
static inline uint32_t aed_load_pair(const int16_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#endif

/* P = (re^2 + im^2) >> 16. |Y| <= 2S, so P < 2^32 when S < 2^23 (windows up to about 512
 * samples; the default is 2^22.7); longer windows keep P in 64 bits, as the reference does
 * (AED_FE_POWER_64, chosen by the generator from the window). */
static inline aed_fe_power_t aed_power(int32_t re, int32_t im)
{
    return (aed_fe_power_t)(((int64_t)re * re + (int64_t)im * im) >> AED_POWER_SHIFT);
}

/* One radix-4 butterfly on (ar, ai), written back (x4) to the complex values 0, q, 2q, 3q of z.
 * Input 0 is x4; inputs 1..3 are multiplied by `scale` (4 for values at 1x, 1 for x4). */
static inline void aed_radix4(int32_t *z, size_t q, const int32_t *ar, const int32_t *ai,
                              int32_t scale)
{
    const int32_t t0r = ar[0] + ar[2] * scale, t0i = ai[0] + ai[2] * scale;
    const int32_t t1r = ar[0] - ar[2] * scale, t1i = ai[0] - ai[2] * scale;
    const int32_t t2r = ar[1] + ar[3], t2i = ai[1] + ai[3];
    const int32_t t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
    z[0] = t0r + t2r * scale;             z[1] = t0i + t2i * scale;
    z[2 * q] = t1r + t3i * scale;         z[2 * q + 1] = t1i - t3r * scale;
    z[4 * q] = t0r - t2r * scale;         z[4 * q + 1] = t0i - t2i * scale;
    z[6 * q] = t1r - t3i * scale;         z[6 * q + 1] = t1i + t3r * scale;
}

/* One radix-4 decimation-in-time stage (sub-DFTs of length q -> 4q) on z = interleaved re, im.
 * Always called with a constant q, so every offset is an immediate. Butterfly offset j is the
 * outer loop: the three twiddles W^(m j N/4q) of an offset are loaded once for all blocks, and
 * j = 0 (twiddle 1, exact) needs no rotation. Butterflies are independent integer operations, so
 * any order gives the same values. */
static inline const int32_t *aed_fft_stage(int32_t *z, const size_t q, const int32_t *tw)
{
    const size_t span = 4 * q;
    /* The last stage reads its unrotated inputs back to 1x and so writes 1x, as the split step
     * wants them (two shifts per butterfly there instead of four per bin pair later). */
    const int in_shift = span == AED_FFT_HALF ? 2 : 0;
    const int32_t scale = span == AED_FFT_HALF ? 1 : 4;
    size_t i, j, m;
    for (i = 0; i < AED_FFT_HALF; i += span) {
        int32_t *p = &z[2 * i], ar[4], ai[4];
        for (m = 0; m < 4; m++) {
            ar[m] = p[2 * m * q] >> in_shift;
            ai[m] = p[2 * m * q + 1] >> in_shift;
        }
        aed_radix4(p, q, ar, ai, 1);
    }
    for (j = 1; j < q; j++, tw += 6) {
        int32_t c[4], s[4], ns[4];
        for (m = 1; m < 4; m++) { /* (cos, sin) of W^(m j N/4q), in reading order */
            c[m] = tw[2 * m - 2];
            s[m] = tw[2 * m - 1];
            ns[m] = -s[m];
        }
        for (i = j; i < AED_FFT_HALF; i += span) {
            int32_t *p = &z[2 * i], ar[4], ai[4];
            for (m = 0; m < 4; m++) {
                ar[m] = p[2 * m * q];
                ai[m] = p[2 * m * q + 1];
            }
            for (m = 1; m < 4; m++) {
                aed_rotate_x4(&ar[m], &ai[m], c[m], s[m], ns[m]);
            }
            ar[0] >>= in_shift;
            ai[0] >>= in_shift;
            aed_radix4(p, q, ar, ai, scale);
        }
    }
    return tw;
}

/* Radix-4 FFT stages after the first (aed_first_stage), in place, no scaling. N/2 = 4^k
 * (model_dev/frontend.py checks), so the stages have sub-DFT lengths q = 4, 16, ..., N/8: each
 * called with a constant q. */
static void aed_fft(int32_t *z)
{
#if AED_FFT_HALF > 16384
#error "aed_fft: FFT sizes above 32768 need more stages here"
#endif
#if AED_FFT_HALF >= 16 /* N = 8 has the first stage only (and no twiddle table) */
    const int32_t *tw = aed_fft_stage(z, 4, aed_fe_fft_twiddles_q30);
#else
    (void)z;
#endif
#if AED_FFT_HALF >= 64
    tw = aed_fft_stage(z, 16, tw);
#endif
#if AED_FFT_HALF >= 256
    tw = aed_fft_stage(z, 64, tw);
#endif
#if AED_FFT_HALF >= 1024
    tw = aed_fft_stage(z, 256, tw);
#endif
#if AED_FFT_HALF >= 4096
    tw = aed_fft_stage(z, 1024, tw);
#endif
#if AED_FFT_HALF >= 16384
    tw = aed_fft_stage(z, 4096, tw);
#endif
#if AED_FFT_HALF >= 16
    (void)tw;
#endif
}

/* max |x| over the frame: max(max x, -min x), both taken with 0. */
static int32_t aed_peak(const int16_t *x)
{
#if AED_FE_DSP
    /* Eight samples per step, two per word: SSUB16 sets a GE flag per half where the first
     * operand is >= the second, SEL takes those halves from its first operand. */
    const size_t simd_end = AED_FE_WINDOW_LENGTH / 8 * 8;
    uint32_t hi2 = 0, lo2 = 0;
    int32_t hi, lo;
    size_t n, k;
    AED_UNROLL2
    for (n = 0; n < simd_end; n += 8) {
        for (k = 0; k < 8; k += 2) {
            const uint32_t v = aed_load_pair(&x[n + k]);
            (void)__ssub16(v, hi2);
            hi2 = __sel(v, hi2);
            (void)__ssub16(lo2, v);
            lo2 = __sel(v, lo2);
        }
    }
    hi = (int16_t)hi2 > (int16_t)(hi2 >> 16) ? (int16_t)hi2 : (int16_t)(hi2 >> 16);
    lo = (int16_t)lo2 < (int16_t)(lo2 >> 16) ? (int16_t)lo2 : (int16_t)(lo2 >> 16);
#else
    const size_t simd_end = 0;
    int32_t hi = 0, lo = 0;
    size_t n;
#endif
    for (n = simd_end; n < AED_FE_WINDOW_LENGTH; n++) {
        hi = x[n] > hi ? x[n] : hi;
        lo = x[n] < lo ? x[n] : lo;
    }
    return hi > -lo ? hi : -lo;
}

/* FFT input n, z[n] = v[2n] + j v[2n+1], zero past the window, with
 * v = ((x << s) w + 2^14) >> 15 = (x w + 2^(14 - s)) >> (15 - s) exactly (numerator and
 * denominator divided by 2^s; for s = 15 the rounding term 2^-1 floors to 0). |x w| < 2^30. */
static inline void aed_input(const int16_t *x, size_t n, int32_t round, int rshift, int32_t *re,
                             int32_t *im)
{
    if (2 * n + 1 < AED_FE_WINDOW_LENGTH) {
#if AED_FE_DSP
        /* one load per sample pair and per window pair; SMLABB/SMLATT: 16 x 16 + 32 */
        const uint32_t xv = aed_load_pair(&x[2 * n]), wv = aed_load_pair(&aed_fe_window_q15[2 * n]);
        *re = __smlabb(xv, wv, round) >> rshift;
        *im = __smlatt(xv, wv, round) >> rshift;
#else
        *re = ((int32_t)x[2 * n] * aed_fe_window_q15[2 * n] + round) >> rshift;
        *im = ((int32_t)x[2 * n + 1] * aed_fe_window_q15[2 * n + 1] + round) >> rshift;
#endif
    } else if (2 * n < AED_FE_WINDOW_LENGTH) {
        *re = ((int32_t)x[2 * n] * aed_fe_window_q15[2 * n] + round) >> rshift;
        *im = 0;
    } else {
        *re = 0;
        *im = 0;
    }
}

/* Window and the first FFT stage (q = 1, twiddles 1) in one pass: the first stage's butterfly
 * at digit-reversed positions rev[r] .. rev[r] + 3 (r < N/8) combines the inputs r + m N/8,
 * m = 0..3, so they are computed from the samples right there instead of being written in
 * digit-reversed order and read back (and zeros past the window are never stored). */
static inline void aed_first_butterfly(int32_t *z, const int16_t *x, size_t r, int32_t round,
                                       int rshift, size_t n_inputs)
{
    int32_t ar[4] = {0, 0, 0, 0}, ai[4] = {0, 0, 0, 0};
    size_t m;
    for (m = 0; m < n_inputs; m++) {
        aed_input(x, r + m * (AED_FFT_HALF / 4), round, rshift, &ar[m], &ai[m]);
    }
#if AED_FFT_HALF > 4
    ar[0] *= 4; /* inputs are at 1x, the output x4 */
    ai[0] *= 4;
    aed_radix4(&z[2 * aed_fe_digit_reverse[r]], 1, ar, ai, 4);
#else
    aed_radix4(&z[2 * aed_fe_digit_reverse[r]], 1, ar, ai, 1); /* also the last stage: 1x */
#endif
}

/* Butterflies r < live have window samples in their input 3 (n = r + 3N/8, samples 2n and
 * 2n + 1 from 3N/4 + 2r on); for the others that input is zero, which the compiler can use. */
#define AED_FIRST_LIVE_MAX ((AED_FE_WINDOW_LENGTH - 3 * AED_FFT_HALF / 2 + 1) / 2)
#define AED_FIRST_LIVE                                                                           \
    (AED_FE_WINDOW_LENGTH <= 3 * AED_FFT_HALF / 2 ? 0                                           \
     : AED_FIRST_LIVE_MAX < AED_FFT_HALF / 4      ? AED_FIRST_LIVE_MAX                          \
                                                  : AED_FFT_HALF / 4)

static void aed_first_stage(int32_t *z, const int16_t *x, int32_t round, int rshift)
{
    const size_t live = AED_FIRST_LIVE;
    size_t r;
    AED_UNROLL2
    for (r = 0; r < live; r++) {
        aed_first_butterfly(z, x, r, round, rshift, 4);
    }
    for (; r < AED_FFT_HALF / 4; r++) {
        aed_first_butterfly(z, x, r, round, rshift, 3);
    }
}

/* Block normalisation, window, real FFT and power; returns the normalisation shift s. */
static int aed_power_spectrum(aed_frontend_t *fe, const int16_t *x)
{
    const int32_t peak = aed_peak(x);
    int32_t *z = fe->z;
    int shift = 0;
    while (shift < 15 && (peak << (shift + 1)) <= 32768) {
        shift++;
    }
    aed_first_stage(z, x, shift < 15 ? (int32_t)1 << (14 - shift) : 0, 15 - shift);
    aed_fft(z);
    /* Split: Y[k] = 2 X[k] = (Z[k] + conj Z[M-k]) - j W^k (Z[k] - conj Z[M-k]), for k and M - k
     * together. With A = Z[k], B = Z[M-k] (indices mod M; the last FFT stage wrote 1x), Y[k]
     * rotates d = (Im A + Im B, Re B - Re A) by W^k; Y[M-k] swaps A and B, so it rotates
     * (d_re, -d_im) by W^(M-k) = -conj W^k (cos[M-k] = -cos[k], sin[M-k] = sin[k]: exact in the
     * Q30 table, checked by firmware_gen). Where W^k gives the rotation (X, Y) + 2^29 before
     * rounding, W^(M-k) gives (2^29 - X, Y + 2^29): one pair of products for both bins.
     * Bounds: |re|, |im| <= S, so |d| <= 2S, the rotation <= 2 sqrt(2) S, and |yr|, |yi| <=
     * (2 + 2 sqrt(2)) S < 2^30.3 (int32), yr^2 + yi^2 < 2^61.6 (int64).
     * k = 0 and M/2 have the exact twiddles 1 and -j (cos[0] = 2^30, cos[N/4] = 0; checked too):
     * d rotates to (d_re, d_im) and (d_im, -d_re), and d_im = 0 there (A = B). */
    {
        const int32_t r0 = z[0], i0 = z[1];
        const int32_t r1 = z[AED_FFT_HALF], i1 = z[AED_FFT_HALF + 1]; /* Z[M/2] */
        fe->power[0] = aed_power(2 * (r0 + i0), 0);
        fe->power[AED_FFT_HALF] = aed_power(2 * (r0 - i0), 0);
        fe->power[AED_FFT_HALF / 2] = aed_power(2 * r1, -2 * i1);
    }
    /* 0 < k < N/4: |cos|, |sin| < 2^30 (checked), so the twiddles are stored x2; with d x2
     * (|2 d| <= 4 S < 2^30) the products are 4 X, rounded like the FFT's (aed_round_q32). */
    {
        const int32_t *a = &z[2], *b = &z[2 * (AED_FFT_HALF - 1)], *cs = aed_fe_split_twiddles_q30;
        aed_fe_power_t *pa = &fe->power[1], *pb = &fe->power[AED_FFT_HALF - 1];
        for (; pa != pb; a += 2, b -= 2, cs += 2, pa++, pb--) { /* bins k = 1 .. N/4 - 1 */
            const int32_t c2 = cs[0], s2 = cs[1]; /* stored doubled */
            const int32_t ar = a[0], ai = a[1], br = b[0], bi = b[1];
            const int32_t dr2 = 2 * (ai + bi), di2 = 2 * (br - ar), neg_dr2 = -dr2;
            const int64_t x4 = (int64_t)c2 * dr2 + (int64_t)s2 * di2;
            const int32_t rot_im = aed_round_q32((int64_t)c2 * di2 + (int64_t)s2 * neg_dr2);
            *pa = aed_power(ar + br + aed_round_q32(x4), ai - bi + rot_im);
            *pb = aed_power(br + ar + aed_round_q32(-x4), bi - ai + rot_im);
        }
    }
    return shift;
}

/* Index of the top set bit of x != 0. */
static inline int aed_msb32(uint32_t x)
{
#if defined(__GNUC__)
    return 31 - __builtin_clz(x);
#else
    int n = 0;
    while (x >>= 1) {
        n++;
    }
    return n;
#endif
}

/* q = round(log2_steps * (log2 E - 2 s)) - log_offset, clamped to int8; E == 0 gives -128, with
 * base = -(2 s log2_steps + log_offset). log2 E = msb + lut[the 8 bits below the top bit] / 2^16;
 * t holds E's top 32 bits (its top bit at bit 31), so those 8 bits are t's bits 30..23.
 * round(steps (msb 2^16 + lut) / 2^16) = steps msb + round(steps lut / 2^16) exactly; the
 * second term is the table aed_fe_log_frac. */
static inline int8_t aed_log_compress(uint64_t e, int32_t base)
{
    const uint32_t hi = (uint32_t)(e >> 32), lo = (uint32_t)e;
    uint32_t t;
    int32_t msb, q;
    if (hi != 0) {
        const int b = aed_msb32(hi);
        msb = 32 + b;
        t = (hi << (31 - b)) | (lo >> b >> 1); /* E >> (b + 1); b + 1 may be 32 */
    } else if (lo != 0) {
        msb = aed_msb32(lo);
        t = lo << (31 - msb);
    } else {
        return -128;
    }
    q = AED_FE_LOG2_STEPS * msb + base + aed_fe_log_frac[(t >> 23) & 255u];
#if AED_FE_DSP
    return (int8_t)__ssat(q, 8);
#else
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
#endif
}

void aed_frontend_init(aed_frontend_t *fe)
{
    memset(fe->history, 0, sizeof fe->history);
    fe->fill = 0;
}

void aed_frontend_frame(aed_frontend_t *fe, const int16_t *samples, int8_t *out)
{
    const int shift = aed_power_spectrum(fe, samples);
    const int32_t log_base = -(2 * shift * AED_FE_LOG2_STEPS + AED_FE_LOG_OFFSET);
    const int16_t *w = aed_fe_mel_weights; /* the bands' weights, one band after the other */
    size_t m;
    for (m = 0; m < AED_FE_N_MELS; m++) {
        /* E = sum of w p over the band's bins (Q15 weights >= 0, 64-bit sum); every band has
         * at least one bin (model_dev/frontend.py refuses empty ones) */
        const aed_fe_power_t *p = &fe->power[aed_fe_mel_start[m]];
        const int16_t *end = w + aed_fe_mel_length[m];
        uint64_t e = 0;
        AED_UNROLL2
        do {
            e += (uint64_t)(uint32_t)*w++ * *p++;
        } while (w != end);
        out[m] = aed_log_compress(e, log_base);
    }
}

size_t aed_frontend_feed(aed_frontend_t *fe, const int16_t *samples, size_t n, int8_t *out,
                         int *ready)
{
    size_t take = AED_FE_WINDOW_LENGTH - fe->fill, i;
    take = n < take ? n : take;
    memcpy(&fe->history[fe->fill], samples, take * sizeof samples[0]);
    fe->fill += take;
    *ready = fe->fill == AED_FE_WINDOW_LENGTH;
    if (*ready) {
        aed_frontend_frame(fe, fe->history, out);
        /* keep the last window - hop samples: moved forward by a hop in chunks of at most a hop,
         * which do not overlap, so memcpy (faster than memmove on newlib) may copy them */
        for (i = 0; i < AED_FE_WINDOW_LENGTH - AED_FE_HOP_LENGTH; i += AED_FE_HOP_LENGTH) {
            const size_t left = AED_FE_WINDOW_LENGTH - AED_FE_HOP_LENGTH - i;
            memcpy(&fe->history[i], &fe->history[i + AED_FE_HOP_LENGTH],
                   (left < AED_FE_HOP_LENGTH ? left : AED_FE_HOP_LENGTH) * sizeof fe->history[0]);
        }
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
