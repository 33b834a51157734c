/* Host harness for the post-processing (aed_post.c), used by the tests.
 *
 * stdin:  [uint32 n_frames][n_frames * AED_FE_N_MELS int8 features]
 *         then AED_N_CLASSES int8 scores for each window, in window order
 * stdout: each window handed out (AED_POST_WINDOW_BYTES int8), then the clip scores and the
 *         decisions (AED_N_CLASSES bytes each), then the window count (uint32).
 */
#include <stdio.h>
#include <stdlib.h>

#include "aed_post.h"

static aed_post_t post;

static void run(const int8_t *window)
{
    int8_t scores[AED_N_CLASSES];
    fwrite(window, 1, AED_POST_WINDOW_BYTES, stdout);
    if (fread(scores, 1, sizeof scores, stdin) != sizeof scores) {
        fprintf(stderr, "post_cli: missing scores for window %u\n", (unsigned)post.n_windows);
        exit(2);
    }
    aed_post_add_scores(&post, scores);
}

int main(void)
{
    uint32_t n, t;
    int8_t *features;
    uint8_t decisions[AED_N_CLASSES];
    const int8_t *window;
    if (fread(&n, sizeof n, 1, stdin) != 1) {
        return 2;
    }
    features = malloc((size_t)n * AED_FE_N_MELS + 1); /* all rows first: scores follow them */
    if (features == NULL || fread(features, AED_FE_N_MELS, n, stdin) != n) {
        return 2;
    }
    aed_post_init(&post);
    for (t = 0; t < n; t++) {
        window = aed_post_push(&post, &features[(size_t)t * AED_FE_N_MELS]);
        if (window != NULL) {
            run(window);
        }
    }
    window = aed_post_finish(&post);
    if (window != NULL) {
        run(window);
    }
    aed_post_decide(post.clip_scores, decisions);
    fwrite(post.clip_scores, 1, AED_N_CLASSES, stdout);
    fwrite(decisions, 1, AED_N_CLASSES, stdout);
    fwrite(&post.n_windows, sizeof post.n_windows, 1, stdout);
    free(features);
    return 0;
}
