/* template.h: prompt templates for instruction records (tok, gen).
 *
 * A template is text with placeholders {instruction} and {system}; each is
 * replaced in one pass (replacement text is not scanned again), and any
 * other text, braces included, is kept as it is. Built in:
 *
 *   alpaca       the Stanford Alpaca / Chinese-LLaMA-Alpaca prompt, ending
 *                in "### Response: " (with the trailing space)
 *   llama2-chat  "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction} [/INST]",
 *                later turns "[INST] {instruction} [/INST]"
 *   raw          "{instruction}"
 *
 * Any other name is read as a template file: its whole text, less one final
 * newline (so that an editor's newline does not end up in every prompt),
 * must hold {instruction}. */
#ifndef LP_TEMPLATE_H
#define LP_TEMPLATE_H

#include <stddef.h>

#define LP_TEMPLATE_DEFAULT "alpaca"
#define LP_TEMPLATE_SYSTEM_DEFAULT "You are a helpful assistant. 你是一个乐于助人的助手。"

typedef struct lp_template lp_template;

/* name: a built-in name or a file path; system: the text for {system}
 * (NULL: LP_TEMPLATE_SYSTEM_DEFAULT). NULL with a message in err when name
 * is neither a built-in nor a readable file, or the file lacks
 * {instruction}. */
lp_template *lp_template_load(const char *name, const char *system, char *err, size_t errlen);
void lp_template_free(lp_template *t);
/* The template's name as given ("alpaca", or the file path). */
const char *lp_template_name(const lp_template *t);

/* The prompt for one instruction: a malloc'ed string. */
char *lp_template_render(const lp_template *t, const char *instruction);

/* Conversations: a template with turns (llama2-chat) renders the second
 * and later user turns without the system part, "[INST] {instruction}
 * [/INST]"; gen puts each earlier turn's answer and EOS between them. For
 * a template without turns, render_turn is render. */
int lp_template_has_turns(const lp_template *t);
char *lp_template_render_turn(const lp_template *t, const char *instruction);

/* The Alpaca rule for the instruction text: instruction, then "\n" and
 * input when input is non-empty. input may be NULL. A malloc'ed string. */
char *lp_instruction_join(const char *instruction, const char *input);

#endif
