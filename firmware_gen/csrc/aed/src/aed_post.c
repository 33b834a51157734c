#include "aed_post.h"

#include <string.h>

const char *const aed_labels[AED_N_CLASSES] = AED_LABELS;
#ifndef AED_TASK_ANOMALY
const int16_t aed_thresholds_q[AED_N_CLASSES] = AED_THRESHOLDS_Q;
#endif

static void reverse(int8_t *a, size_t n)
{
    size_t i;
    for (i = 0; i < n / 2; i++) {
        const int8_t t = a[i];
        a[i] = a[n - 1 - i];
        a[n - 1 - i] = t;
    }
}

/* Rotate the ring so the oldest row comes first (three reversals: in place, no scratch). */
static const int8_t *window(aed_post_t *p)
{
    const size_t split = (size_t)p->head * AED_FE_N_MELS;
    if (p->fill == AED_POST_WINDOW_FRAMES && split != 0) {
        reverse(p->ring, split);
        reverse(&p->ring[split], AED_POST_WINDOW_BYTES - split);
        reverse(p->ring, AED_POST_WINDOW_BYTES);
        p->head = 0;
    }
    p->pending = 0;
    p->n_windows++;
    return p->ring;
}

void aed_post_init(aed_post_t *p)
{
    memset(p->ring, AED_POST_PAD_VALUE, sizeof p->ring);
#ifndef AED_TASK_ANOMALY
    memset(p->clip_scores, -128, sizeof p->clip_scores);
#endif
    p->head = 0;
    p->fill = 0;
    p->until_window = AED_POST_WINDOW_FRAMES;
    p->pending = 0;
    p->n_windows = 0;
}

const int8_t *aed_post_push(aed_post_t *p, const int8_t *frame)
{
    memcpy(&p->ring[(size_t)p->head * AED_FE_N_MELS], frame, AED_FE_N_MELS);
    p->head = (p->head + 1) % AED_POST_WINDOW_FRAMES;
    p->fill += p->fill < AED_POST_WINDOW_FRAMES;
    p->pending++;
    if (--p->until_window == 0) {
        p->until_window = AED_POST_HOP_FRAMES;
        return window(p);
    }
    return NULL;
}

const int8_t *aed_post_finish(aed_post_t *p)
{
    /* Short clip (no window yet: padded) or ragged tail (one more window ending at the end). */
    return (p->n_windows == 0 || p->pending != 0) ? window(p) : NULL;
}

#ifndef AED_TASK_ANOMALY
void aed_post_add_scores(aed_post_t *p, const int8_t *scores)
{
    int c;
    for (c = 0; c < AED_N_CLASSES; c++) {
        if (scores[c] > p->clip_scores[c]) {
            p->clip_scores[c] = scores[c];
        }
    }
}

int aed_post_decide(const int8_t *scores, uint8_t *decisions)
{
    int c, fired = 0;
    for (c = 0; c < AED_N_CLASSES; c++) {
        decisions[c] = scores[c] >= aed_thresholds_q[c];
        fired += decisions[c];
    }
    return fired;
}

void aed_smooth_init(aed_smooth_t *s)
{
    memset(s->last, -128, sizeof s->last);
    s->next = 0;
}

void aed_smooth(aed_smooth_t *s, const int8_t *scores, int8_t *out)
{
    int c;
    uint32_t k;
    memcpy(s->last[s->next], scores, AED_N_CLASSES);
    s->next = (s->next + 1) % AED_POST_SMOOTH_WINDOWS;
    for (c = 0; c < AED_N_CLASSES; c++) {
        int8_t m = s->last[0][c];
        for (k = 1; k < AED_POST_SMOOTH_WINDOWS; k++) {
            m = s->last[k][c] > m ? s->last[k][c] : m;
        }
        out[c] = m;
    }
}
#endif /* !AED_TASK_ANOMALY */
