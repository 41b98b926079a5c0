/* chat.h - chat templates rendered in C (no Jinja): the model's
 * tokenizer.chat_template text is recognized by distinctive substrings and
 * mapped to one of the built-in formats below; anything else is an error.
 *
 *   llama3       <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
 *                then <|start_header_id|>assistant<|end_header_id|>\n\n
 *   bitnet       HF bitnet-b1.58-2B-4T tokenizer_config.json:
 *                Role: CONTENT<|eot_id|> ... then "Assistant: "
 *   bitnet-gguf  the template embedded in the official 2B-4T GGUF, rendered
 *                literally: <|begin_of_text|>Human: CONTENT\n\nBITNETAssistant: <|end_of_text|>
 *                (third parties report it is wrong for the instruct model;
 *                "bitnet" is what the model was trained with)
 *   llama2       [INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ASSISTANT</s><s>[INST] ... */
#ifndef BN_CHAT_H
#define BN_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include "util.h"
#include "vocab.h"

typedef enum bn_chat_kind {
    BN_CHAT_LLAMA3 = 1,
    BN_CHAT_BITNET,
    BN_CHAT_BITNET_GGUF,
    BN_CHAT_LLAMA2,
} bn_chat_kind;

typedef struct bn_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} bn_chat_msg;

/* Recognize a template text (NULL: the model has none -> error). */
int bn_chat_detect(const char *tmpl, bn_chat_kind *out, bn_err *e);
/* By name: llama3, bitnet, bitnet-gguf, llama2. */
int bn_chat_from_name(const char *name, bn_chat_kind *out, bn_err *e);
const char *bn_chat_name(bn_chat_kind k);

/* Render the conversation; add_generation_prompt appends the assistant
 * prefix. Special tokens are written as their texts (BOS/EOS texts come
 * from v), so tokenize the result with parse_special. *out is malloc'd. */
int bn_chat_apply(bn_chat_kind k, const bn_vocab *v, const bn_chat_msg *msgs, size_t n,
                  bool add_generation_prompt, char **out, bn_err *e);

/* llama.cpp's -e: turn \n \r \t \' \" \\ and \xHH escapes into bytes, in
 * place (the text only shrinks); returns the new length. Unknown escapes
 * are kept as written. */
size_t bn_unescape(char *s, size_t n);

#endif
