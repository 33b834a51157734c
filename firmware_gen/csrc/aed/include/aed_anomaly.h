/* Anomaly scores on the device (task "anomaly"): the integer score of one model window, its exact
 * mean over a clip with the decision, and for streams a running mean with k-of-n smoothing.
 * Identical to the Python integer reference (quantize/anomaly.py, quantize.tasks.TASKS["anomaly"]).
 *
 * Dense autoencoders (AED_ANOMALY_METHOD_DENSE_AE): the model input x is the window (the
 * front end's int8 rows, time-major), the output y its int8 reconstruction. y is requantised to
 * the input's scale and zero point with TFLite's fixed-point multiplier (AED_ANOMALY_REQUANT_MULT,
 * AED_ANOMALY_REQUANT_SHIFT: quantize_multiplier(output scale / input scale)) and clamped to int8; the
 * window score is sum((x - y_rq)^2) over the AED_POST_WINDOW_BYTES values: at most
 * 640 * 255^2 < 2^31 for windows up to 640 values, so uint32 never overflows.
 * The clip score is the mean over the clip's windows, kept exact as (sum, count); the clip is
 * anomalous when mean >= AED_ANOMALY_THRESHOLD_Q, i.e. sum >= threshold * count.
 * The causal predictor (AED_ANOMALY_METHOD_CAUSAL_CONV), the ID classifier
 * (AED_ANOMALY_METHOD_ID_CLASSIFIER) and Group MADE (AED_ANOMALY_METHOD_GROUP_MADE) have their
 * window scores in aed_anomaly_methods.c.
 * Window assembly is aed_post's (shared with tagging). C99, no malloc, no float; works with the
 * generated engine or with TFLM. */
#ifndef AED_ANOMALY_H
#define AED_ANOMALY_H

#include <stdint.h>

/* AED_ANOMALY_* of the model (generated): method (AED_ANOMALY_METHOD_<NAME>), requantisation,
 * zero points, threshold. */
#include "aed_config.h"
#include "aed_post.h"

#ifndef AED_TASK_ANOMALY
#error "aed_anomaly needs an anomaly model's aed_config.h (AED_TASK_ANOMALY)"
#endif
#if !defined(AED_ANOMALY_METHOD_DENSE_AE) && !defined(AED_ANOMALY_METHOD_CAUSAL_CONV) && \
    !defined(AED_ANOMALY_METHOD_ID_CLASSIFIER) && !defined(AED_ANOMALY_METHOD_GROUP_MADE)
#error "aed_anomaly: no integer score for this model's method (AED_ANOMALY_METHOD)"
#endif

/* Streams: running mean over the last AED_ANOMALY_SPAN window scores (fewer at the start); a
 * window's decision = running mean >= threshold; the alarm fires when at least
 * AED_ANOMALY_VOTE_K of the last AED_ANOMALY_VOTE_N decisions did (1 of 1: no smoothing).
 * Override with -D or before including this header. */
#ifndef AED_ANOMALY_SPAN
#define AED_ANOMALY_SPAN 32
#endif
#ifndef AED_ANOMALY_VOTE_N
#define AED_ANOMALY_VOTE_N 1
#endif
#ifndef AED_ANOMALY_VOTE_K
#define AED_ANOMALY_VOTE_K 1
#endif
#if AED_ANOMALY_SPAN < 1 || AED_ANOMALY_VOTE_N < 1 || AED_ANOMALY_VOTE_K < 1 || \
    AED_ANOMALY_VOTE_K > AED_ANOMALY_VOTE_N
#error "need AED_ANOMALY_SPAN >= 1 and 1 <= AED_ANOMALY_VOTE_K <= AED_ANOMALY_VOTE_N"
#endif

/* An int8 model output value requantised to the input's scale and zero point (clamped). */
int8_t aed_anomaly_requantize(int8_t y);

/* Sum over n values of (target - requantised output)^2: the reconstruction error of the
 * autoencoders and the next-frame predictor's error (n * 255^2 must stay below 2^32). */
uint32_t aed_anomaly_squared_error(const int8_t *target, const int8_t *output, size_t n);

/* Integer anomaly score of one window: `window` = the model input (AED_POST_WINDOW_BYTES int8,
 * time-major, as aed_post hands it out), `output` = the model's int8 output for it. */
uint32_t aed_anomaly_window_score(const int8_t *window, const int8_t *output);

#if defined(AED_ANOMALY_METHOD_ID_CLASSIFIER)
/* ID classifier (aed_anomaly_methods.c): the window score is -log p(own machine ID) in 2^-16
 * nats from the int8 logits (`output`, AED_ANOMALY_ID_N_CLASSES of them) via tables. The own ID
 * is a class index (the model's metadata lists the machine IDs in class order): build-time
 * AED_ANOMALY_MACHINE_ID, changed at run time with aed_anomaly_set_machine_id (-1: out of
 * range, unchanged). */
#ifndef AED_ANOMALY_MACHINE_ID
#define AED_ANOMALY_MACHINE_ID 0
#endif
int aed_anomaly_set_machine_id(uint32_t index);
uint32_t aed_anomaly_machine_id(void);
uint32_t aed_anomaly_id_nll_q16(const int8_t *logits, uint32_t own);
#endif

/* Clip aggregation: the mean over windows kept exact as (sum, count). */
typedef struct {
    uint64_t sum;
    uint32_t n_windows;
} aed_anomaly_clip_t;

void aed_anomaly_clip_init(aed_anomaly_clip_t *c);
void aed_anomaly_clip_add(aed_anomaly_clip_t *c, uint32_t window_score);
/* 1 when the clip mean >= AED_ANOMALY_THRESHOLD_Q, i.e. sum >= threshold * n_windows (exact);
 * 0 for a clip without windows. */
uint8_t aed_anomaly_decide(const aed_anomaly_clip_t *c);

/* One stream's running mean and vote. */
typedef struct {
    uint32_t scores[AED_ANOMALY_SPAN]; /* ring of the last window scores */
    uint64_t sum;                      /* of the scores in the ring */
    uint32_t n;                        /* scores in the ring, <= AED_ANOMALY_SPAN */
    uint32_t next;                     /* ring slot of the next score */
    uint8_t votes[AED_ANOMALY_VOTE_N]; /* ring of the last decisions */
    uint32_t fired;                    /* decisions set among votes */
    uint32_t next_vote;
    uint8_t decision; /* the last window's decision (running mean >= threshold) */
} aed_anomaly_stream_t;

void aed_anomaly_stream_init(aed_anomaly_stream_t *s);
/* Fold in one window score; returns the alarm (0/1) after it. */
uint8_t aed_anomaly_stream_push(aed_anomaly_stream_t *s, uint32_t window_score);

#endif /* AED_ANOMALY_H */
