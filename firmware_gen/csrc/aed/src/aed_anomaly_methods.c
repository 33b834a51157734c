/* Window scores of the causal convolutional predictor, the machine-ID classifier and Group MADE
 * (the deployable anomaly methods besides the dense autoencoder of aed_anomaly.c), selected by
 * AED_ANOMALY_METHOD_<NAME>. Identical to the Python integer reference
 * (quantize/anomaly_scores.py); the constants and tables come from the generated aed_config.h
 * (quantize.anomaly_scores.device_defines). C99, no malloc, no float. */
#include "aed_anomaly.h"

#if defined(AED_ANOMALY_METHOD_CAUSAL_CONV)
/* The model output holds AED_ANOMALY_PRED_ROWS rows of AED_FE_N_MELS; row j predicts window
 * frame j + k (k = the context). Rows 0 .. T-k-1 are compared with frames k .. T-1; the last
 * row predicts the frame after the window and is not scored. */
#define AED_ANOMALY_PRED_CONTEXT (AED_POST_WINDOW_FRAMES - AED_ANOMALY_PRED_ROWS + 1)
#define AED_ANOMALY_PRED_VALUES ((AED_ANOMALY_PRED_ROWS - 1) * AED_FE_N_MELS)
#if AED_ANOMALY_PRED_ROWS < 2 || AED_ANOMALY_PRED_ROWS > AED_POST_WINDOW_FRAMES
#error "AED_ANOMALY_PRED_ROWS must be 2 .. AED_POST_WINDOW_FRAMES"
#endif
#if AED_ANOMALY_PRED_VALUES > 66051
#error "predictor window scores are uint32: at most 66051 compared values (255^2 each)"
#endif

/* Sum of squared next-frame prediction errors at the input scale. */
uint32_t aed_anomaly_window_score(const int8_t *window, const int8_t *output)
{
    const int8_t *target = window + AED_ANOMALY_PRED_CONTEXT * AED_FE_N_MELS;
    return aed_anomaly_squared_error(target, output, AED_ANOMALY_PRED_VALUES);
}
#endif /* AED_ANOMALY_METHOD_CAUSAL_CONV */

#if defined(AED_ANOMALY_METHOD_ID_CLASSIFIER)
#if AED_ANOMALY_ID_N_CLASSES < 2 || AED_ANOMALY_ID_N_CLASSES > 255
#error "the ID classifier's exp sum is uint32: 2 .. 255 classes"
#endif
#if AED_ANOMALY_MACHINE_ID < 0 || AED_ANOMALY_MACHINE_ID >= AED_ANOMALY_ID_N_CLASSES
#error "AED_ANOMALY_MACHINE_ID must be a class index of the model"
#endif

/* STEP[d] = round(2^16 s d), EXP[d] = round(2^24 exp(-s d)) for logit differences d (s the
 * logits' scale); LN[i] = round(2^16 ln(1 + i/256)). */
static const uint32_t id_step_q16[256] = AED_ANOMALY_ID_STEP_Q16;
static const uint32_t id_exp_q24[256] = AED_ANOMALY_ID_EXP_Q24;
static const uint32_t ln_q16_table[257] = AED_ANOMALY_LN_Q16;
static uint32_t own_id = AED_ANOMALY_MACHINE_ID;

int aed_anomaly_set_machine_id(uint32_t index)
{
    if (index >= AED_ANOMALY_ID_N_CLASSES) {
        return -1;
    }
    own_id = index;
    return 0;
}

uint32_t aed_anomaly_machine_id(void)
{
    return own_id;
}

/* ln(s / 2^24) in Q16 for 2^24 <= s < 2^32: s = 2^b m, m in [2^24, 2^25) (its low bits
 * dropped), a 256-step table over m's fraction with linear interpolation. */
static uint32_t ln_q16(uint32_t s)
{
    uint32_t b = 24;
    uint32_t f, i, r, lo, hi;
    while (b < 31 && (s >> (b + 1)) != 0) {
        b++;
    }
    f = (s >> (b - 24)) - ((uint32_t)1 << 24);
    i = f >> 16;
    r = f & 0xffffu;
    lo = ln_q16_table[i];
    hi = ln_q16_table[i + 1];
    return (b - 24) * (uint32_t)AED_ANOMALY_LN2_Q16 + lo + (((hi - lo) * r + 0x8000u) >> 16);
}

uint32_t aed_anomaly_id_nll_q16(const int8_t *logits, uint32_t own)
{
    int32_t top = logits[0];
    uint32_t sum = 0;
    size_t i;
    for (i = 1; i < AED_ANOMALY_ID_N_CLASSES; i++) {
        if (logits[i] > top) {
            top = logits[i];
        }
    }
    for (i = 0; i < AED_ANOMALY_ID_N_CLASSES; i++) {
        sum += id_exp_q24[top - logits[i]]; /* the max contributes 2^24: sum >= 2^24 */
    }
    return id_step_q16[top - logits[own]] + ln_q16(sum);
}

/* -log p(own machine ID) in 2^-16 nats; the window itself is not needed. */
uint32_t aed_anomaly_window_score(const int8_t *window, const int8_t *output)
{
    (void)window;
    return aed_anomaly_id_nll_q16(output, own_id);
}
#endif /* AED_ANOMALY_METHOD_ID_CLASSIFIER */

#if defined(AED_ANOMALY_METHOD_GROUP_MADE)
#if AED_ANOMALY_MADE_SHIFT < 0 || AED_ANOMALY_MADE_SHIFT > 24
#error "AED_ANOMALY_MADE_SHIFT must be 0 .. 24"
#endif
/* E[q] = round(2^(K+8) s_in^2 / 2 exp(-2 l(q))), L[q] = round(2^8 (l(q) - l(-128))) for the
 * int8 log-scale output q (l(q) = s_out (q - zp) / gain), K = AED_ANOMALY_MADE_SHIFT. */
static const uint32_t made_e[256] = AED_ANOMALY_MADE_E;
static const uint32_t made_l[256] = AED_ANOMALY_MADE_L;

/* Gaussian negative log-likelihood of the window in 2^-8 nats: the output holds the means of the
 * AED_POST_WINDOW_BYTES inputs, then their log-scales (times the gain); saturates at 2^32 - 1. */
uint32_t aed_anomaly_window_score(const int8_t *window, const int8_t *output)
{
    const int8_t *log_scale = output + AED_POST_WINDOW_BYTES;
    uint64_t sum = 0;
    size_t i;
    for (i = 0; i < AED_POST_WINDOW_BYTES; i++) {
        const int32_t d = (int32_t)window[i] - aed_anomaly_requantize(output[i]);
        const uint32_t q = (uint32_t)(log_scale[i] + 128);
        const uint64_t sq = (uint64_t)(uint32_t)(d * d) * made_e[q];
        sum += ((sq + (((uint64_t)1 << AED_ANOMALY_MADE_SHIFT) >> 1)) >> AED_ANOMALY_MADE_SHIFT) +
               made_l[q];
    }
    return sum > 0xffffffffu ? 0xffffffffu : (uint32_t)sum;
}
#endif /* AED_ANOMALY_METHOD_GROUP_MADE */
