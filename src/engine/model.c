/* Placeholder. */
typedef int nuage__model_placeholder;
