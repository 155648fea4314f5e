/* Position recovery for config errors: a small JSON scanner that walks the raw text and
 * records the line and column of every value and member key, in a tree that mirrors the
 * document. jansson validates the text first; this scanner must still survive any bytes
 * (it is fuzzed directly), so it checks every index against the length and gives up at the
 * first byte it does not understand, keeping the tree built so far. Columns count UTF-8
 * characters (bytes that are not continuation bytes), as jansson's do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

typedef struct scanner {
    const unsigned char *s;
    size_t n, i;
    int line, col; /* position of the last consumed character */
    cfg_arena_t *a;
    bool find_dups;
    bool stop;
    cfg_pos_t *dup, *dup_first;
} scanner_t;

static int peek(const scanner_t *sc) { return sc->i < sc->n ? sc->s[sc->i] : -1; }

static void advance(scanner_t *sc) {
    if (sc->i >= sc->n) return;
    unsigned char c = sc->s[sc->i++];
    if (c == '\n') {
        sc->line++;
        sc->col = 0;
    } else if ((c & 0xC0) != 0x80) {
        sc->col++;
    }
}

static void skip_ws(scanner_t *sc) {
    for (;;) {
        int c = peek(sc);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') advance(sc);
        else return;
    }
}

static cfg_pos_t *new_node(scanner_t *sc, char kind, cfg_pos_t *parent) {
    cfg_pos_t *n = cfg_alloc(sc->a, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = sc->line;
    n->col = sc->col + 1; /* the next character starts the value */
    n->parent = parent;
    return n;
}

static void append(cfg_pos_t *parent, cfg_pos_t *child) {
    if (parent->last) parent->last->next = child;
    else parent->first = child;
    parent->last = child;
    parent->n_children++;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(scanner_t *sc, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(peek(sc));
        if (h < 0) return false;
        v = v * 16 + (unsigned)h;
        advance(sc);
    }
    *out = v;
    return true;
}

static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a string token starting at '"'. With `decoded`, returns its decoded bytes
 * (allocated in the arena; escapes resolved as jansson does). Returns false on invalid
 * text. The decoded form is never longer than the raw token. */
static bool scan_string(scanner_t *sc, const char **decoded) {
    if (peek(sc) != '"') return false;
    advance(sc);
    size_t start = sc->i;
    /* find the raw extent first to size the buffer */
    size_t j = start;
    while (j < sc->n && sc->s[j] != '"') {
        if (sc->s[j] == '\\') j++;
        j++;
    }
    if (j >= sc->n) return false;
    char *out = NULL;
    size_t o = 0;
    if (decoded) {
        out = cfg_alloc(sc->a, j - start + 1);
        if (!out) return false;
    }
    for (;;) {
        int c = peek(sc);
        if (c < 0) return false;
        if (c == '"') {
            advance(sc);
            break;
        }
        if (c < 0x20) return false; /* raw control characters are invalid JSON */
        if (c != '\\') {
            if (out) out[o++] = (char)c;
            advance(sc);
            continue;
        }
        advance(sc);
        int e = peek(sc);
        if (e < 0) return false;
        advance(sc);
        char simple = 0;
        switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(sc, &cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (peek(sc) != '\\') return false;
                advance(sc);
                if (peek(sc) != 'u') return false;
                advance(sc);
                if (!read_hex4(sc, &lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
            }
            if (cp == 0) return false; /* jansson rejects \u0000 without JSON_ALLOW_NUL */
            /* an escape is 6 (or 12) raw bytes and decodes to at most 4: the buffer fits */
            if (out) o += put_utf8(out + o, cp);
            continue;
        }
        default: return false;
        }
        if (out) out[o++] = simple;
    }
    if (out) {
        out[o] = '\0';
        *decoded = out;
    }
    return true;
}

static bool scan_literal(scanner_t *sc, const char *word) {
    for (const char *w = word; *w; w++) {
        if (peek(sc) != (unsigned char)*w) return false;
        advance(sc);
    }
    return true;
}

static bool scan_number(scanner_t *sc) {
    size_t start = sc->i;
    for (;;) {
        int c = peek(sc);
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') advance(sc);
        else break;
    }
    return sc->i > start;
}

static cfg_pos_t *scan_value(scanner_t *sc, cfg_pos_t *parent, int depth);

static bool key_equal_earlier(const cfg_pos_t *obj, const cfg_pos_t *member, cfg_pos_t **first) {
    for (cfg_pos_t *m = obj->first; m && m != member; m = m->next) {
        if (m->key && member->key && strcmp(m->key, member->key) == 0) {
            *first = m;
            return true;
        }
    }
    return false;
}

static bool scan_object(scanner_t *sc, cfg_pos_t *node, int depth) {
    advance(sc); /* '{' */
    skip_ws(sc);
    if (peek(sc) == '}') {
        advance(sc);
        return true;
    }
    for (;;) {
        skip_ws(sc);
        int kl = sc->line, kc = sc->col + 1;
        const char *key = NULL;
        if (!scan_string(sc, &key)) return false;
        skip_ws(sc);
        if (peek(sc) != ':') return false;
        advance(sc);
        cfg_pos_t *child = scan_value(sc, node, depth + 1);
        if (!child) return false;
        child->key = key;
        child->key_line = kl;
        child->key_col = kc;
        append(node, child);
        if (sc->stop) return false;
        if (sc->find_dups) {
            cfg_pos_t *first = NULL;
            if (key_equal_earlier(node, child, &first)) {
                sc->dup = child;
                sc->dup_first = first;
                sc->stop = true;
                return false;
            }
        }
        skip_ws(sc);
        int c = peek(sc);
        if (c == ',') {
            advance(sc);
            continue;
        }
        if (c == '}') {
            advance(sc);
            return true;
        }
        return false;
    }
}

static bool scan_array(scanner_t *sc, cfg_pos_t *node, int depth) {
    advance(sc); /* '[' */
    skip_ws(sc);
    if (peek(sc) == ']') {
        advance(sc);
        return true;
    }
    for (;;) {
        cfg_pos_t *child = scan_value(sc, node, depth + 1);
        if (!child) return false;
        append(node, child);
        if (sc->stop) return false;
        skip_ws(sc);
        int c = peek(sc);
        if (c == ',') {
            advance(sc);
            continue;
        }
        if (c == ']') {
            advance(sc);
            return true;
        }
        return false;
    }
}

/* Returns the node (possibly incomplete: sc->stop is then set) or NULL when no value
 * starts here. */
static cfg_pos_t *scan_value(scanner_t *sc, cfg_pos_t *parent, int depth) {
    if (sc->stop || depth > CFG_MAX_DEPTH) {
        sc->stop = true;
        return NULL;
    }
    skip_ws(sc);
    int c = peek(sc);
    char kind;
    if (c == '{') kind = '{';
    else if (c == '[') kind = '[';
    else if (c == '"') kind = '"';
    else if (c == 't' || c == 'f' || c == 'n') kind = (char)c;
    else if (c == '-' || (c >= '0' && c <= '9')) kind = '0';
    else {
        sc->stop = true;
        return NULL;
    }
    cfg_pos_t *node = new_node(sc, kind, parent);
    if (!node) {
        sc->stop = true;
        return NULL;
    }
    bool ok;
    switch (kind) {
    case '{': ok = scan_object(sc, node, depth); break;
    case '[': ok = scan_array(sc, node, depth); break;
    case '"': ok = scan_string(sc, NULL); break;
    case 't': ok = scan_literal(sc, "true"); break;
    case 'f': ok = scan_literal(sc, "false"); break;
    case 'n': ok = scan_literal(sc, "null"); break;
    default: ok = scan_number(sc); break;
    }
    if (!ok) sc->stop = true;
    return node;
}

cfg_pos_scan_t cfg_pos_scan(cfg_arena_t *a, const char *text, size_t len, bool find_duplicates) {
    cfg_pos_scan_t r = {NULL, false, NULL, NULL};
    if (!a || (!text && len)) return r;
    scanner_t sc = {(const unsigned char *)text, len, 0, 1, 0, a, find_duplicates, false, NULL, NULL};
    /* a UTF-8 byte order mark is skipped by the parser too */
    if (len >= 3 && sc.s[0] == 0xEF && sc.s[1] == 0xBB && sc.s[2] == 0xBF) sc.i = 3;
    r.root = scan_value(&sc, NULL, 0);
    if (r.root && !sc.stop) {
        skip_ws(&sc);
        r.complete = sc.i == sc.n;
    }
    r.dup = sc.dup;
    r.dup_first = sc.dup_first;
    return r;
}

cfg_pos_t *cfg_pos_member(const cfg_pos_t *obj, const char *key, cfg_pos_t **hint) {
    if (!obj || !key || obj->kind != '{') return NULL;
    cfg_pos_t *start = (hint && *hint) ? *hint : obj->first;
    for (cfg_pos_t *m = start; m; m = m->next) {
        if (m->key && strcmp(m->key, key) == 0) {
            if (hint) *hint = m->next;
            return m;
        }
    }
    for (cfg_pos_t *m = obj->first; m && m != start; m = m->next) {
        if (m->key && strcmp(m->key, key) == 0) {
            if (hint) *hint = m->next;
            return m;
        }
    }
    return NULL;
}

cfg_pos_t *cfg_pos_element(const cfg_pos_t *arr, size_t i) {
    if (!arr || arr->kind != '[') return NULL;
    cfg_pos_t *m = arr->first;
    while (m && i--) m = m->next;
    return m;
}

static size_t pos_index(const cfg_pos_t *node) {
    size_t i = 0;
    for (const cfg_pos_t *m = node->parent->first; m && m != node; m = m->next) i++;
    return i;
}

void cfg_pos_path(const cfg_pos_t *node, char *buf, size_t bufsz) {
    if (!buf || !bufsz) return;
    buf[0] = '\0';
    /* collect the chain root..node (bounded by the depth limit) */
    const cfg_pos_t *chain[64];
    int n = 0;
    for (const cfg_pos_t *m = node; m && m->parent && n < 64; m = m->parent) chain[n++] = m;
    size_t used = 0;
    for (int k = n - 1; k >= 0; k--) {
        const cfg_pos_t *m = chain[k];
        int w;
        if (m->key) w = snprintf(buf + used, bufsz - used, "%s%s", used ? "." : "", m->key);
        else w = snprintf(buf + used, bufsz - used, "[%zu]", pos_index(m));
        if (w < 0 || (size_t)w >= bufsz - used) return;
        used += (size_t)w;
    }
}
