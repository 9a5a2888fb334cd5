/*  pond_export: POND_EXPORT marks what libpond-client exports.

    The library is built with hidden visibility: only the declarations of
    the public headers (include/pond/) that carry POND_EXPORT are in the
    shared library's dynamic symbol table; everything else stays internal
    to it. Programs that link the static library see no difference.
*/
#ifndef POND_EXPORT_H_INCLUDED
#define POND_EXPORT_H_INCLUDED

#if defined(__GNUC__) && __GNUC__ >= 4
#define POND_EXPORT __attribute__ ((visibility ("default")))
#else
#define POND_EXPORT
#endif

#endif
