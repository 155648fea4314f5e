/* Printing text that came from a user's files (error messages quoting a bad line) without
 * sending its raw bytes to the terminal: control bytes and bytes that are not valid UTF-8
 * are written as \xNN (a tab as \t), so a corrupt file cannot garble or command the terminal. */
#include <stdio.h>

#include "tool_text.h"

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static int utf8_len(const unsigned char *s) {
    if (s[0] < 0x80) return 1;
    int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4)) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

void dsc_tool_fputs_escaped(const char *text, FILE *out) {
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        int n = utf8_len(s);
        if (n == 1 && *s == '\t') {
            fputs("\\t", out);
        } else if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
            fprintf(out, "\\x%02x", *s);
            n = 1;
        } else {
            fwrite(s, 1, (size_t)n, out);
        }
        s += n;
    }
}
