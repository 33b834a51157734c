/* Golden vectors: a few short clips with their int16 audio, the int8 features of the Python
 * reference front end, the window and clip scores of the TFLM runtime's outputs under the task's
 * post-processing and the decisions (aed_golden.c, generated), and the self-test that replays
 * them (app/aed_selftest.c). */
#ifndef AED_GOLDEN_H
#define AED_GOLDEN_H

#include <stdint.h>

#include "aed_config.h"

/* What a golden window and clip score are (quantize.tasks): tagging: the int8 model outputs of
 * a window and their max over the clip, per class; anomaly: the integer score of each window
 * (aed_anomaly_window_score) and the clip's exact mean as {sum of window scores, windows}. */
#if defined(AED_TASK_ANOMALY)
typedef uint32_t aed_golden_window_score_t;
typedef uint64_t aed_golden_clip_score_t;
#define AED_GOLDEN_WINDOW_SCORES 1
#define AED_GOLDEN_CLIP_SCORES 2
#else
typedef int8_t aed_golden_window_score_t;
typedef int8_t aed_golden_clip_score_t;
#define AED_GOLDEN_WINDOW_SCORES AED_N_CLASSES
#define AED_GOLDEN_CLIP_SCORES AED_N_CLASSES
#endif

typedef struct {
    const char *name;
    const int16_t *audio;
    uint32_t n_samples;
    const int8_t *features; /* [n_frames][AED_FE_N_MELS] */
    uint32_t n_frames;
    const aed_golden_window_score_t *window_scores; /* [n_windows][AED_GOLDEN_WINDOW_SCORES] */
    uint32_t n_windows;
    const aed_golden_clip_score_t *clip_scores; /* [AED_GOLDEN_CLIP_SCORES] */
    const uint8_t *decisions;                   /* [AED_N_CLASSES] */
} aed_golden_clip_t;

extern const aed_golden_clip_t aed_golden_clips[AED_GOLDEN_N_CLIPS];

#endif /* AED_GOLDEN_H */
