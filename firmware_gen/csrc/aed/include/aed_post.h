/* Post-processing: streaming window assembly, clip aggregation and per-class decisions, identical
 * to model_dev.arch.window_starts / clip_windows / aggregate on the host:
 *  - windows of AED_POST_WINDOW_FRAMES frames start every AED_POST_HOP_FRAMES frames while they
 *    fit; if the last one stops short of the clip's end, one more window ends exactly at the end;
 *  - a clip shorter than a window gives one window padded with AED_POST_PAD_VALUE (silence);
 *  - clip score of a class = max over windows of its int8 score; decision = score >= threshold.
 * Continuous streams (no clip end) just keep pushing frames: a window every hop.
 * Anomaly models (AED_TASK_ANOMALY) use the window assembly only; their scores, clip mean and
 * decision are aed_anomaly.h's. C99, no malloc, no float. Independent of the engine: works with
 * TFLM too. */
#ifndef AED_POST_H
#define AED_POST_H

#include <stddef.h>
#include <stdint.h>

#include "aed_frontend.h"
/* The model's task, labels, thresholds and windowing (AED_N_CLASSES, AED_POST_WINDOW_FRAMES,
 * AED_POST_HOP_FRAMES...); generated from its metadata. */
#include "aed_config.h"

#define AED_POST_WINDOW_BYTES (AED_POST_WINDOW_FRAMES * AED_FE_N_MELS)
#define AED_POST_PAD_VALUE (-128)
/* Optional smoothing of streaming decisions: max over the last N window scores (1 = off). */
#ifndef AED_POST_SMOOTH_WINDOWS
#define AED_POST_SMOOTH_WINDOWS 1
#endif

extern const char *const aed_labels[AED_N_CLASSES];
#ifndef AED_TASK_ANOMALY
extern const int16_t aed_thresholds_q[AED_N_CLASSES]; /* 128: never fires */
#endif

/* One audio stream's window assembly and clip scores. */
typedef struct {
    /* Ring of the last AED_POST_WINDOW_FRAMES feature rows; rotated in place so that it is in time
     * order whenever a window is handed out (no second window buffer). */
    int8_t ring[AED_POST_WINDOW_BYTES];
    uint32_t head;         /* ring row of the next frame */
    uint32_t fill;         /* rows pushed, saturating at AED_POST_WINDOW_FRAMES */
    uint32_t until_window; /* frames until the next regular window */
    uint32_t pending;      /* frames pushed since the last window handed out */
    uint32_t n_windows;    /* windows handed out since aed_post_init */
#ifndef AED_TASK_ANOMALY
    int8_t clip_scores[AED_N_CLASSES];
#endif
} aed_post_t;

/* Start a clip (or a stream). */
void aed_post_init(aed_post_t *p);

/* Push one front-end row (AED_FE_N_MELS int8). Returns the window (AED_POST_WINDOW_FRAMES x
 * AED_FE_N_MELS, time-major: exactly the model input) when one is complete, else NULL. The
 * pointer stays valid until the next push or finish. */
const int8_t *aed_post_push(aed_post_t *p, const int8_t *frame);

/* End of clip: the last window when the clip needs one (shorter than a window, or a ragged tail),
 * else NULL. Run it like the others, then read clip_scores. */
const int8_t *aed_post_finish(aed_post_t *p);

#ifndef AED_TASK_ANOMALY
/* Fold one window's model output (AED_N_CLASSES int8) into the clip scores (max). */
void aed_post_add_scores(aed_post_t *p, const int8_t *scores);

/* decisions[c] = scores[c] >= aed_thresholds_q[c]; returns how many classes fired. */
int aed_post_decide(const int8_t *scores, uint8_t *decisions);

/* Streaming smoothing: out = max over the last AED_POST_SMOOTH_WINDOWS window scores. */
typedef struct {
    int8_t last[AED_POST_SMOOTH_WINDOWS][AED_N_CLASSES];
    uint32_t next;
} aed_smooth_t;

void aed_smooth_init(aed_smooth_t *s);
void aed_smooth(aed_smooth_t *s, const int8_t *scores, int8_t *out);
#endif /* !AED_TASK_ANOMALY */

#endif /* AED_POST_H */
