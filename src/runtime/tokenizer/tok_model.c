/* tok_model.c - tokenizer models: BPE (ranked merges, heap merge per word, word cache), WordPiece and
 * Unigram (Viterbi), following HF tokenizers 0.22. */
#include "tokenizer_impl.h"

#include <stdio.h>
#include <string.h>

#define TK_CACHE_SLOTS (1u << 16)
#define TK_CACHE_MAX_KEY 256 /* HF caches words shorter than 256 bytes */

void tk_model_free(tk_model *m) {
    tk_map_free(&m->vocab);
    el_free(m->id_to_tok);
    el_free(m->id_len);
    el_free(m->merges.keys);
    el_free(m->merges.rank);
    el_free(m->merges.new_id);
    el_free(m->prefix);
    el_free(m->suffix);
    el_free(m->scores);
    if (m->cache) {
        for (size_t i = 0; i <= m->cache_mask; i++) {
            el_free(m->cache[i].key);
            el_free(m->cache[i].ids);
        }
        el_free(m->cache);
        pthread_mutex_destroy(&m->cache_lock);
    }
    memset(m, 0, sizeof *m);
}

static inline size_t merge_slot(uint64_t key, size_t mask) {
    key ^= key >> 29;
    key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 32;
    return (size_t)key & mask;
}

static inline bool merge_get(const tk_merge_map *mm, int32_t a, int32_t b, uint32_t *rank, uint32_t *new_id) {
    if (!mm->keys) return false;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = merge_slot(key, mm->mask);
    for (;;) {
        uint64_t k = mm->keys[j];
        if (k == key) {
            *rank = mm->rank[j];
            *new_id = mm->new_id[j];
            return true;
        }
        if (!k) return false;
        j = (j + 1) & mm->mask;
    }
}

edgellm_status tk_merge_put(tk_merge_map *mm, int32_t a, int32_t b, uint32_t rank, uint32_t new_id);
edgellm_status tk_merge_put(tk_merge_map *mm, int32_t a, int32_t b, uint32_t rank, uint32_t new_id) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = merge_slot(key, mm->mask);
    for (;;) {
        uint64_t k = mm->keys[j];
        if (k == key || !k) {
            if (!k) mm->n++;
            mm->keys[j] = key;
            mm->rank[j] = rank; /* a repeated pair keeps the last rank, as HashMap::insert */
            mm->new_id[j] = new_id;
            return EDGELLM_STATUS_OK;
        }
        j = (j + 1) & mm->mask;
    }
}

edgellm_status tk_model_prepare(tk_model *m) {
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        m->byte_ids[i] = tk_map_get(&m->vocab, name, 6);
    }
    if (m->type == TK_MODEL_BPE && !m->ignore_merges && !m->prefix && !m->suffix) {
        m->split_meta = tk_map_get(&m->vocab, "\xE2\x96\x81", 3) >= 0; /* else unknown runs could fuse across */
        for (size_t i = 0; i < m->vocab.n && m->split_meta; i++) {
            const char *k = tk_map_key(&m->vocab, i);
            uint32_t kl = m->vocab.e[i].klen;
            for (uint32_t j = 1; j + 3 <= kl; j++)
                if (!memcmp(k + j, "\xE2\x96\x81", 3) && !(j >= 3 && !memcmp(k + j - 3, "\xE2\x96\x81", 3))) {
                    m->split_meta = false;
                    break;
                }
        }
    }
    if (m->type == TK_MODEL_BPE) {
        m->cache = el_calloc(TK_CACHE_SLOTS, sizeof *m->cache);
        if (!m->cache) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        m->cache_mask = TK_CACHE_SLOTS - 1;
        pthread_mutex_init(&m->cache_lock, NULL);
    }
    return EDGELLM_STATUS_OK;
}

/* ---- BPE -------------------------------------------------------------------------------------- */
typedef struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len; /* bytes; 0 = merged away */
} sym;

typedef struct hent {
    uint32_t rank, pos, new_id;
} hent;

static inline bool hless(const hent *a, const hent *b) { /* a has priority over b */
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void hpush(hent *h, size_t *n, hent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static hent hpop(hent *h, size_t *n) {
    hent top = h[0];
    hent last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && hless(&h[c + 1], &h[c])) c++;
        if (!hless(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

typedef struct bpe_scratch {
    sym *syms;
    hent *heap;
    size_t cap, hcap;
    el_buf tmp;
} bpe_scratch;

static edgellm_status sym_add(bpe_scratch *sc, size_t *n, int32_t id, uint32_t len) {
    if (*n == sc->cap) {
        size_t nc = sc->cap ? sc->cap * 2 : 64;
        sym *p = el_realloc(sc->syms, nc * sizeof *p);
        if (!p) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
        sc->syms = p;
        sc->cap = nc;
    }
    sym *s = &sc->syms[*n];
    s->id = id;
    s->len = len;
    s->prev = (int32_t)*n - 1;
    s->next = (int32_t)*n + 1;
    (*n)++;
    return EDGELLM_STATUS_OK;
}

static edgellm_status bpe_word(const tk_model *m, bpe_scratch *sc, const char *w, size_t wl, int32_t **ids,
                               size_t *n_ids, size_t *cap) {
    size_t n = 0;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    bool have_unk = false;
    size_t plen = m->prefix ? strlen(m->prefix) : 0, slen = m->suffix ? strlen(m->suffix) : 0;
    for (size_t i = 0; i < wl;) {
        int32_t cp;
        size_t cl = (size_t)tk_utf8_decode(w + i, wl - i, &cp);
        bool is_first = i == 0, is_last = i + cl >= wl;
        const char *s = w + i;
        size_t sl = cl;
        bool pre = !is_first && plen, suf = is_last && slen;
        if (pre || suf) {
            sc->tmp.len = 0;
            if (pre) EL_TRY(el_buf_append(&sc->tmp, m->prefix, plen));
            EL_TRY(el_buf_append(&sc->tmp, w + i, cl));
            if (suf) EL_TRY(el_buf_append(&sc->tmp, m->suffix, slen));
            s = sc->tmp.data;
            sl = sc->tmp.len;
        }
        int32_t id = tk_map_get(&m->vocab, s, sl);
        if (id >= 0) {
            if (have_unk) {
                EL_TRY(sym_add(sc, &n, unk_id, unk_len));
                have_unk = false;
            }
            EL_TRY(sym_add(sc, &n, id, (uint32_t)cl));
        } else {
            bool done = false;
            if (m->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < sl; k++)
                    if (m->byte_ids[(unsigned char)s[k]] < 0) all = false;
                if (all) {
                    for (size_t k = 0; k < sl; k++) EL_TRY(sym_add(sc, &n, m->byte_ids[(unsigned char)s[k]], 1));
                    done = true;
                }
            }
            if (!done && m->unk_id >= 0) {
                if (have_unk && m->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (have_unk) EL_TRY(sym_add(sc, &n, unk_id, unk_len));
                    have_unk = true;
                    unk_id = m->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (have_unk) EL_TRY(sym_add(sc, &n, unk_id, unk_len));
    if (n == 0) return EDGELLM_STATUS_OK;
    sc->syms[n - 1].next = -1;

    if (n > 1 && m->merges.n) {
        if (sc->hcap < n * 2 + 8) {
            size_t nc = n * 2 + 8;
            hent *h = el_realloc(sc->heap, nc * sizeof *h);
            if (!h) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
            sc->heap = h;
            sc->hcap = nc;
        }
        size_t hn = 0;
        uint32_t rank, nid;
        for (size_t i = 0; i + 1 < n; i++)
            if (merge_get(&m->merges, sc->syms[i].id, sc->syms[i + 1].id, &rank, &nid))
                hpush(sc->heap, &hn, (hent){rank, (uint32_t)i, nid});
        while (hn) {
            hent top = hpop(sc->heap, &hn);
            sym *cur = &sc->syms[top.pos];
            if (cur->len == 0 || cur->next < 0) continue;
            sym *right = &sc->syms[cur->next];
            if (!merge_get(&m->merges, cur->id, right->id, &rank, &nid) || nid != top.new_id) continue;
            cur->id = (int32_t)top.new_id;
            cur->len += right->len;
            cur->next = right->next;
            right->len = 0;
            if (cur->next >= 0) sc->syms[cur->next].prev = (int32_t)top.pos;
            if (hn + 2 > sc->hcap) {
                size_t nc = sc->hcap * 2;
                hent *h = el_realloc(sc->heap, nc * sizeof *h);
                if (!h) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
                sc->heap = h;
                sc->hcap = nc;
                cur = &sc->syms[top.pos];
            }
            if (cur->prev >= 0 && merge_get(&m->merges, sc->syms[cur->prev].id, cur->id, &rank, &nid))
                hpush(sc->heap, &hn, (hent){rank, (uint32_t)cur->prev, nid});
            if (cur->next >= 0 && merge_get(&m->merges, cur->id, sc->syms[cur->next].id, &rank, &nid))
                hpush(sc->heap, &hn, (hent){rank, top.pos, nid});
        }
    }
    for (size_t i = 0; i < n; i++)
        if (sc->syms[i].len) EL_TRY(tk_ids_push(ids, n_ids, cap, sc->syms[i].id));
    return EDGELLM_STATUS_OK;
}

/* Per-thread scratch buffers, freed when the thread exits. */
static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static bool g_scratch_key_ok;

static void scratch_free(void *p) {
    bpe_scratch *sc = p;
    if (!sc) return;
    el_free(sc->syms);
    el_free(sc->heap);
    el_buf_free(&sc->tmp);
    el_free(sc);
}

static void scratch_key_init(void) { g_scratch_key_ok = pthread_key_create(&g_scratch_key, scratch_free) == 0; }

static bpe_scratch *get_scratch(void) {
    pthread_once(&g_scratch_once, scratch_key_init);
    if (!g_scratch_key_ok) return NULL;
    bpe_scratch *sc = pthread_getspecific(g_scratch_key);
    if (!sc) {
        sc = el_calloc(1, sizeof *sc);
        if (sc && pthread_setspecific(g_scratch_key, sc) != 0) {
            el_free(sc);
            sc = NULL;
        }
    }
    return sc;
}

static edgellm_status bpe_tokenize_word(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                        size_t *cap) {
    if (m->ignore_merges) {
        int32_t id = tk_map_get(&m->vocab, s, len);
        if (id >= 0) return tk_ids_push(ids, n, cap, id);
    }
    tk_model *mm = (tk_model *)m; /* the cache is internally synchronized */
    uint64_t h = 0;
    if (len < TK_CACHE_MAX_KEY && mm->cache) {
        h = el_hash64(s, len);
        tk_cache_slot *slot = &mm->cache[h & mm->cache_mask];
        pthread_mutex_lock(&mm->cache_lock);
        if (slot->key && slot->klen == len && !memcmp(slot->key, s, len)) {
            edgellm_status st = EDGELLM_STATUS_OK;
            for (uint32_t i = 0; i < slot->n && st >= 0; i++) st = tk_ids_push(ids, n, cap, slot->ids[i]);
            pthread_mutex_unlock(&mm->cache_lock);
            return st;
        }
        pthread_mutex_unlock(&mm->cache_lock);
    }
    size_t n0 = *n;
    bpe_scratch *sc = get_scratch();
    if (!sc) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: cannot allocate scratch buffers");
    EL_TRY(bpe_word(m, sc, s, len, ids, n, cap));
    if (len < TK_CACHE_MAX_KEY && mm->cache) {
        size_t cnt = *n - n0;
        char *k = el_malloc(len + 1);
        int32_t *v = el_malloc((cnt ? cnt : 1) * sizeof *v);
        if (!k || !v) {
            el_free(k);
            el_free(v);
            return EDGELLM_STATUS_OK; /* caching is optional */
        }
        memcpy(k, s, len);
        memcpy(v, *ids + n0, cnt * sizeof *v);
        tk_cache_slot *slot = &mm->cache[h & mm->cache_mask];
        pthread_mutex_lock(&mm->cache_lock);
        el_free(slot->key);
        el_free(slot->ids);
        slot->key = k;
        slot->klen = (uint32_t)len;
        slot->ids = v;
        slot->n = (uint32_t)cnt;
        pthread_mutex_unlock(&mm->cache_lock);
    }
    return EDGELLM_STATUS_OK;
}

/* Cuts before every U+2581 that follows a character other than U+2581 when no merge can span it. */
static edgellm_status bpe_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                   size_t *cap) {
    if (!m->split_meta) return bpe_tokenize_word(m, s, len, ids, n, cap);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= len; i++) {
        if (memcmp(s + i, "\xE2\x96\x81", 3)) continue;
        if (i >= 3 && !memcmp(s + i - 3, "\xE2\x96\x81", 3)) continue;
        EL_TRY(bpe_tokenize_word(m, s + start, i - start, ids, n, cap));
        start = i;
    }
    return bpe_tokenize_word(m, s + start, len - start, ids, n, cap);
}

/* ---- WordPiece ---------------------------------------------------------------------------------- */
static edgellm_status wordpiece_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                         size_t *cap) {
    size_t nchars = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) nchars++;
    if ((int64_t)nchars > m->max_input_chars_per_word) {
        if (m->unk_id < 0) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: WordPiece needs an unk_token");
        return tk_ids_push(ids, n, cap, m->unk_id);
    }
    size_t n0 = *n, start = 0, plen = m->prefix ? strlen(m->prefix) : 0;
    bpe_scratch *sc = get_scratch();
    if (!sc) return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: cannot allocate scratch buffers");
    el_buf *tmp = &sc->tmp;
    while (start < len) {
        size_t end = len;
        int32_t found = -1;
        while (start < end) {
            const char *q = s + start;
            size_t ql = end - start;
            if (start > 0) {
                tmp->len = 0;
                EL_TRY(el_buf_append(tmp, m->prefix ? m->prefix : "", plen));
                EL_TRY(el_buf_append(tmp, s + start, end - start));
                q = tmp->data;
                ql = tmp->len;
            }
            found = tk_map_get(&m->vocab, q, ql);
            if (found >= 0) break;
            end--;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            *n = n0;
            if (m->unk_id < 0) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: WordPiece needs an unk_token");
            return tk_ids_push(ids, n, cap, m->unk_id);
        }
        EL_TRY(tk_ids_push(ids, n, cap, found));
        start = end;
    }
    return EDGELLM_STATUS_OK;
}

/* ---- Unigram ------------------------------------------------------------------------------------ */
typedef struct unode {
    double score;
    int64_t start; /* -1 = none */
    int32_t id;
} unode;

static edgellm_status unigram_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                       size_t *cap) {
    if (len == 0) return EDGELLM_STATUS_OK;
    unode *best = el_malloc((len + 1) * sizeof *best);
    size_t *pieces = el_malloc((len + 1) * 2 * sizeof *pieces);
    if (!best || !pieces) {
        el_free(best);
        el_free(pieces);
        return el_err(EDGELLM_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    for (size_t i = 0; i <= len; i++) best[i] = (unode){0.0, -1, -1};
    const double unk_score = m->min_score - 10.0;
    edgellm_status st = EDGELLM_STATUS_OK;
    size_t maxlen = m->max_input_chars_per_word > 0 ? (size_t)m->max_input_chars_per_word : len; /* max token bytes */
    for (size_t at = 0; at < len;) {
        double base = best[at].score;
        int32_t cp;
        size_t mb = (size_t)tk_utf8_decode(s + at, len - at, &cp);
        bool single = false;
        for (size_t e = at + 1; e <= len && e - at <= maxlen; e++) {
            if (e < len && ((unsigned char)s[e] & 0xC0) == 0x80) continue;
            int32_t id = tk_map_get(&m->vocab, s + at, e - at);
            if (id < 0) continue;
            double cand = m->scores[id] + base;
            if (best[e].start < 0 || cand > best[e].score) best[e] = (unode){cand, (int64_t)at, id};
            if (e - at == mb) single = true;
        }
        if (!single) {
            if (m->unk_id < 0) {
                st = el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Unigram needs an unk_id for unknown characters");
                goto done;
            }
            double cand = unk_score + base;
            if (best[at + mb].start < 0 || cand > best[at + mb].score) best[at + mb] = (unode){cand, (int64_t)at, m->unk_id};
        }
        at += mb;
    }
    /* backtrack into (start, end) string pieces, fusing consecutive unknowns */
    size_t np = 0;
    size_t e = len, fuse_end = 0;
    bool fusing = false;
    while (e > 0) {
        unode *nd = &best[e];
        size_t st0 = (size_t)nd->start;
        if (m->fuse_unk && m->unk_id >= 0 && nd->id == m->unk_id) {
            if (!fusing) fuse_end = e;
            fusing = true;
        } else {
            if (fusing) {
                pieces[2 * np] = e;
                pieces[2 * np + 1] = fuse_end;
                np++;
                fusing = false;
            }
            pieces[2 * np] = st0;
            pieces[2 * np + 1] = e;
            np++;
        }
        e = st0;
    }
    if (fusing) {
        pieces[2 * np] = 0;
        pieces[2 * np + 1] = fuse_end;
        np++;
    }
    for (size_t k = np; k-- > 0 && st >= 0;) {
        const char *p = s + pieces[2 * k];
        size_t pl = pieces[2 * k + 1] - pieces[2 * k];
        int32_t id = tk_map_get(&m->vocab, p, pl);
        if (id >= 0) {
            st = tk_ids_push(ids, n, cap, id);
            continue;
        }
        if (m->byte_fallback) {
            bool all = true;
            for (size_t b = 0; b < pl; b++)
                if (m->byte_ids[(unsigned char)p[b]] < 0) all = false;
            if (all) {
                for (size_t b = 0; b < pl && st >= 0; b++) st = tk_ids_push(ids, n, cap, m->byte_ids[(unsigned char)p[b]]);
                continue;
            }
        }
        if (m->unk_id < 0) {
            st = el_err(EDGELLM_STATUS_FORMAT, "tokenizer: Unigram needs an unk_id");
            break;
        }
        st = tk_ids_push(ids, n, cap, m->unk_id);
    }
done:
    el_free(best);
    el_free(pieces);
    return st;
}

edgellm_status tk_model_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, size_t *n,
                                 size_t *cap) {
    if (len == 0) return EDGELLM_STATUS_OK;
    switch (m->type) {
    case TK_MODEL_BPE: return bpe_tokenize(m, s, len, ids, n, cap);
    case TK_MODEL_WORDPIECE: return wordpiece_tokenize(m, s, len, ids, n, cap);
    case TK_MODEL_UNIGRAM: return unigram_tokenize(m, s, len, ids, n, cap);
    case TK_MODEL_WORDLEVEL: {
        int32_t id = tk_map_get(&m->vocab, s, len);
        if (id < 0) id = m->unk_id;
        if (id < 0) return el_err(EDGELLM_STATUS_FORMAT, "tokenizer: WordLevel: no unk_token for an unknown word");
        return tk_ids_push(ids, n, cap, id);
    }
    }
    return el_err(EDGELLM_STATUS_UNSUPPORTED, "tokenizer: unknown model");
}
