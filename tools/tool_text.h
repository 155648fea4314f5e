/* Safe printing of text quoted from users' files (tools/tool_text.c). */
#ifndef DSC_TOOLS_TOOL_TEXT_H
#define DSC_TOOLS_TOOL_TEXT_H

#include <stdio.h>

/* Writes `text` with control bytes and invalid UTF-8 escaped as \xNN (tab as \t). */
void dsc_tool_fputs_escaped(const char *text, FILE *out);

#endif
