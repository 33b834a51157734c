/* Integer log-mel front end: int16 audio in, int8 features out (the model's input tensor).
 * C99, no malloc, no float; bit-exact with model_dev/frontend.py for every input. */
#ifndef AED_FRONTEND_H
#define AED_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

/* AED_FE_* constants of this front end (sample rate, window, hop, FFT size, mel bands, log
 * scaling); generated from its FrontendConfig. */
#include "aed_frontend_config.h"

/* Tables (aed_frontend_tables.c). */
extern const int16_t aed_fe_window_q15[AED_FE_WINDOW_LENGTH];
/* Q30 twiddles (cos, sin) in the order the FFT stages after the first read them, and doubled for
 * the split step's bins 1 .. N/4 - 1; base-4 digit reversal of the first N/8 FFT inputs. */
extern const int32_t aed_fe_fft_twiddles_q30[];
extern const int32_t aed_fe_split_twiddles_q30[];
extern const uint16_t aed_fe_digit_reverse[AED_FE_FFT_SIZE / 8];
extern const int16_t aed_fe_mel_start[AED_FE_N_MELS];
extern const int16_t aed_fe_mel_length[AED_FE_N_MELS];
extern const int32_t aed_fe_mel_offset[AED_FE_N_MELS];
extern const int16_t aed_fe_mel_weights[AED_FE_N_MEL_WEIGHTS];
/* round(log2_steps * log2(1 + (i + 1/2) / 256)), i.e. the reference's Q16 log table times
 * log2_steps, rounded from Q16 */
extern const uint8_t aed_fe_log_frac[256];

/* Power spectrum values: 32 bits while the window allows it (AED_FE_POWER_64 = 0), else 64. */
#if AED_FE_POWER_64
typedef uint64_t aed_fe_power_t;
#else
typedef uint32_t aed_fe_power_t;
#endif

/* State of one front end: the sample history for streaming plus FFT scratch (about 4 KB).
 * Not shared between threads; use one per audio stream. */
typedef struct {
    int16_t history[AED_FE_WINDOW_LENGTH];
    size_t fill;
    int32_t z[AED_FE_FFT_SIZE]; /* FFT data: re, im interleaved */
    aed_fe_power_t power[AED_FE_N_BINS];
} aed_frontend_t;

/* Reset the streaming history. */
void aed_frontend_init(aed_frontend_t *fe);

/* One frame: AED_FE_WINDOW_LENGTH samples -> AED_FE_N_MELS int8 features. */
void aed_frontend_frame(aed_frontend_t *fe, const int16_t *samples, int8_t *out);

/* Streaming: consume samples until a frame completes or the input ends. Returns the number of
 * samples consumed; when a frame completed, writes it to out and sets *ready to 1 (else 0).
 * Call repeatedly with the remaining input. Frames start every AED_FE_HOP_LENGTH samples. */
size_t aed_frontend_feed(aed_frontend_t *fe, const int16_t *samples, size_t n, int8_t *out,
                         int *ready);

/* Frames a whole clip of n samples yields (0 when shorter than one window). */
size_t aed_frontend_n_frames(size_t n_samples);

/* Whole clip: writes aed_frontend_n_frames(n) rows of AED_FE_N_MELS to out. Resets fe. */
size_t aed_frontend_clip(aed_frontend_t *fe, const int16_t *samples, size_t n, int8_t *out);

#endif /* AED_FRONTEND_H */
