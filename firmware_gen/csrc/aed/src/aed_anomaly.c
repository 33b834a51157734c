#include "aed_anomaly.h"

#include <string.h>

#if (-1 >> 1) != -1
#error "aed_anomaly needs arithmetic right shifts of negative integers"
#endif

/* TFLite MultiplyByQuantizedMultiplier (gemmlowp SaturatingRoundingDoublingHighMul, then
 * RoundingDivideByPOT), the engine's arithmetic: aed_model.c keeps its copy static inline in
 * generated code (and TFLM users have none), so the anomaly score carries these three
 * functions. */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * b + (1 << 30)) >> 31);
}

static int32_t rdpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u);
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + ((x & mask) > threshold);
}

static int32_t mbqm(int32_t x, int32_t m, int shift)
{
    const int left = shift > 0 ? shift : 0;
    return rdpot(srdhm((int32_t)((uint32_t)x << left), m), left > 0 ? 0 : -shift);
}

int8_t aed_anomaly_requantize(int8_t y)
{
    const int32_t v = mbqm((int32_t)y - AED_ANOMALY_OUTPUT_ZERO_POINT, AED_ANOMALY_REQUANT_MULT,
                           AED_ANOMALY_REQUANT_SHIFT) +
                      AED_ANOMALY_INPUT_ZERO_POINT;
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

#if defined(AED_ANOMALY_METHOD_DENSE_AE)
#if AED_POST_WINDOW_BYTES > 640
#error "dense AE window scores are uint32: at most 640 inputs per window (640 * 255^2 < 2^31)"
#endif
/* Sum of squared reconstruction errors at the input scale. */
uint32_t aed_anomaly_window_score(const int8_t *window, const int8_t *output)
{
    return aed_anomaly_squared_error(window, output, AED_POST_WINDOW_BYTES);
}
#endif

uint32_t aed_anomaly_squared_error(const int8_t *target, const int8_t *output, size_t n)
{
    uint32_t sum = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        const int32_t d = (int32_t)target[i] - aed_anomaly_requantize(output[i]);
        sum += (uint32_t)(d * d);
    }
    return sum;
}

void aed_anomaly_clip_init(aed_anomaly_clip_t *c)
{
    c->sum = 0;
    c->n_windows = 0;
}

void aed_anomaly_clip_add(aed_anomaly_clip_t *c, uint32_t window_score)
{
    c->sum += window_score;
    c->n_windows++;
}

/* mean >= threshold  <=>  sum >= threshold * n (n > 0): exact, no division. */
static uint8_t mean_fires(uint64_t sum, uint32_t n)
{
    return (uint8_t)(n > 0 && sum >= (uint64_t)AED_ANOMALY_THRESHOLD_Q * n);
}

uint8_t aed_anomaly_decide(const aed_anomaly_clip_t *c)
{
    return mean_fires(c->sum, c->n_windows);
}

void aed_anomaly_stream_init(aed_anomaly_stream_t *s)
{
    memset(s, 0, sizeof *s);
}

uint8_t aed_anomaly_stream_push(aed_anomaly_stream_t *s, uint32_t window_score)
{
    /* running mean over the last AED_ANOMALY_SPAN scores */
    if (s->n == AED_ANOMALY_SPAN) {
        s->sum -= s->scores[s->next];
    } else {
        s->n++;
    }
    s->scores[s->next] = window_score;
    s->sum += window_score;
    s->next = (s->next + 1) % AED_ANOMALY_SPAN;
    s->decision = mean_fires(s->sum, s->n);
    /* k-of-n vote over the last AED_ANOMALY_VOTE_N decisions (a slot not yet used holds 0) */
    s->fired += s->decision;
    s->fired -= s->votes[s->next_vote];
    s->votes[s->next_vote] = s->decision;
    s->next_vote = (s->next_vote + 1) % AED_ANOMALY_VOTE_N;
    return (uint8_t)(s->fired >= AED_ANOMALY_VOTE_K);
}
