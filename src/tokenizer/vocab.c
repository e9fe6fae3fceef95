/* Placeholder: the tokenizer is written here. */
typedef int nuage__tokenizer_placeholder;
