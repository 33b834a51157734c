/* Self-test: stream every golden clip through the front end (hop-sized chunks, as a DMA
 * half-buffer would deliver them), window assembly, engine and the task's scores and
 * aggregation, and compare each stage with the expected values of golden/aed_golden.c. */
#include <string.h>

#include "aed_frontend.h"
#include "aed_model.h"
#include "aed_platform.h"
#include "aed_post.h"
#include "aed_selftest.h"
#ifdef AED_TASK_ANOMALY
#include "aed_anomaly.h"
#endif

#if AED_MODEL_IN_FRAMES != AED_POST_WINDOW_FRAMES || AED_MODEL_IN_MELS != AED_FE_N_MELS
#error "model input shape differs from the front end's window"
#endif
#if !defined(AED_TASK_ANOMALY) && AED_MODEL_N_CLASSES != AED_N_CLASSES
#error "model output size differs from the number of labels"
#endif

static aed_frontend_t fe;
static aed_post_t post;
static aed_selftest_stats_t stats;
#ifdef AED_TASK_ANOMALY
static aed_anomaly_clip_t anomaly_clip;
#endif

/* Run one window through the engine, score it as the task does and check it against the
 * expected window scores. */
static unsigned run_window(const aed_golden_clip_t *clip, const int8_t *window)
{
    int8_t scores[AED_MODEL_N_CLASSES];
    const uint32_t start = aed_cycles();
    unsigned bad = 0;
    aed_model_run(window, scores);
    stats.model_cycles += aed_cycles() - start;
#ifdef AED_TASK_ANOMALY
    {
        const uint32_t score = aed_anomaly_window_score(window, scores);
        if (post.n_windows > clip->n_windows || score != clip->window_scores[post.n_windows - 1]) {
            bad = AED_SELFTEST_WINDOWS;
        }
        aed_anomaly_clip_add(&anomaly_clip, score);
    }
#else
    if (post.n_windows > clip->n_windows ||
        memcmp(scores, &clip->window_scores[(post.n_windows - 1) * AED_N_CLASSES],
               AED_N_CLASSES) != 0) {
        bad = AED_SELFTEST_WINDOWS;
    }
    aed_post_add_scores(&post, scores);
#endif
    stats.windows++;
    return bad;
}

/* The clip's aggregate and decisions against the expected ones. */
static unsigned check_clip_scores(const aed_golden_clip_t *clip)
{
#ifdef AED_TASK_ANOMALY
    const uint8_t decision = aed_anomaly_decide(&anomaly_clip);
    return (anomaly_clip.sum != clip->clip_scores[0] ||
            anomaly_clip.n_windows != clip->clip_scores[1] || decision != clip->decisions[0])
               ? AED_SELFTEST_CLIP
               : 0u;
#else
    uint8_t decisions[AED_N_CLASSES];
    aed_post_decide(post.clip_scores, decisions);
    return (memcmp(post.clip_scores, clip->clip_scores, AED_N_CLASSES) != 0 ||
            memcmp(decisions, clip->decisions, AED_N_CLASSES) != 0)
               ? AED_SELFTEST_CLIP
               : 0u;
#endif
}

static unsigned check_clip(const aed_golden_clip_t *clip)
{
    int8_t row[AED_FE_N_MELS];
    const int8_t *window;
    uint32_t pos = 0, frames = 0;
    unsigned bad = 0;
    aed_frontend_init(&fe);
    aed_post_init(&post);
#ifdef AED_TASK_ANOMALY
    aed_anomaly_clip_init(&anomaly_clip);
#endif
    while (pos < clip->n_samples) {
        /* hop-sized chunks, as a DMA half-buffer would deliver them */
        uint32_t chunk = clip->n_samples - pos;
        int ready;
        uint32_t start;
        chunk = chunk < AED_FE_HOP_LENGTH ? chunk : AED_FE_HOP_LENGTH;
        start = aed_cycles();
        pos += (uint32_t)aed_frontend_feed(&fe, &clip->audio[pos], chunk, row, &ready);
        stats.frontend_cycles += aed_cycles() - start;
        if (!ready) {
            continue;
        }
        if (frames >= clip->n_frames ||
            memcmp(row, &clip->features[frames * AED_FE_N_MELS], AED_FE_N_MELS) != 0) {
            bad |= AED_SELFTEST_FEATURES;
        }
        frames++;
        window = aed_post_push(&post, row);
        if (window != NULL) {
            bad |= run_window(clip, window);
        }
    }
    stats.frames += frames;
    if (frames != clip->n_frames) {
        bad |= AED_SELFTEST_FEATURES;
    }
    window = aed_post_finish(&post);
    if (window != NULL) {
        bad |= run_window(clip, window);
    }
    if (post.n_windows != clip->n_windows) {
        bad |= AED_SELFTEST_WINDOWS;
    }
    return bad | check_clip_scores(clip);
}

int aed_selftest(void)
{
    uint32_t i;
    memset(&stats, 0, sizeof stats);
    for (i = 0; i < AED_GOLDEN_N_CLIPS; i++) {
        stats.failed[i] = (uint8_t)check_clip(&aed_golden_clips[i]);
        stats.passed += stats.failed[i] == 0;
        stats.clips++;
    }
    return (int)(stats.clips - stats.passed);
}

void aed_selftest_stats(aed_selftest_stats_t *out)
{
    *out = stats;
}
