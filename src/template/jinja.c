/* Placeholder: the Jinja engine is written here. */
typedef int nuage__template_placeholder;
