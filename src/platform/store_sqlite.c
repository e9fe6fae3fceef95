/* Placeholder: the SQLite store is written here (see store.h). */
typedef int nuage__store_placeholder;
