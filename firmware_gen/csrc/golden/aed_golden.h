/* Golden vectors: a few short clips with their int16 audio, the int8 features of the Python
 * reference front end and the int8 outputs of the TFLM runtime on the model (aed_golden.c,
 * generated), and the self-test that replays them (app/aed_selftest.c). */
#ifndef AED_GOLDEN_H
#define AED_GOLDEN_H

#include <stdint.h>

#include "aed_config.h"

typedef struct {
    const char *name;
    const int16_t *audio;
    uint32_t n_samples;
    const int8_t *features; /* [n_frames][AED_FE_N_MELS] */
    uint32_t n_frames;
    const int8_t *window_scores; /* [n_windows][AED_N_CLASSES], window order */
    uint32_t n_windows;
    const int8_t *clip_scores; /* [AED_N_CLASSES]: max over windows */
    const uint8_t *decisions;  /* [AED_N_CLASSES] */
} aed_golden_clip_t;

extern const aed_golden_clip_t aed_golden_clips[AED_GOLDEN_N_CLIPS];

#endif /* AED_GOLDEN_H */
