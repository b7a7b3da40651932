/*
 * codec.h — the value encodings of the s3db format, byte for byte.
 *
 * Everything here is pure (no I/O, no globals beyond constant tables) and
 * follows ../spec/s3db-format.md (copied facts, section numbers cited at
 * each function in codec.c):
 *   - JavaScript's Number::toString, which the format inherits (§0);
 *   - base62 integers and base36 short keys (§3.3), the "decimal" number
 *     encoding (§3.3.3), datetime/dateonly as base62 (§3.4);
 *   - header-value encoding metadataEncode/metadataDecode (§3.10), RFC 2047
 *     words as AWS returns non-ASCII metadata (§4.2), and v7's value rules
 *     (B.5.1, B.5.2);
 *   - base64 (OpenSSL EVP) and encodeURIComponent percent-encoding;
 *   - s3db's `|`-joined array encoding (§3.5).
 *
 * Ownership: every char* returned is malloc'd and belongs to the caller;
 * NULL means out of memory unless the function says otherwise.
 */
#ifndef S3DB_CODEC_H
#define S3DB_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* ---- numbers ---------------------------------------------------------- */

/* JavaScript ToString(Number): shortest round-trip decimal, "1e+21",
 * "1.5e-7", "-0" -> "0", NaN -> "NaN", Infinity -> "Infinity".
 * buf must hold 32 bytes. */
void codec_js_number(double n, char buf[32]);
/* JavaScript Number(s) for decimal/exponent text; NaN when invalid.     */
double codec_js_parse_number(const char *s);

/* §3.3.2, byte-identical to s3db.js: NaN/Inf -> "undefined"; negative n
 * -> "-" + encode(-floor(n)); 0 < n < 1 -> "" (s3db.js's defect, kept:
 * integer attributes never meet it; the decimal writer avoids it). */
char *codec_base62_encode(double n);
double codec_base62_decode(const char *s);  /* "" -> 0; NaN when invalid */
char *codec_base62_encode_v7(double n);  /* identical for v7 (alias)       */
char *codec_base36_encode(uint64_t n);            /* short keys        */
/* -1 when s is not base36 (lower-case digits/letters only) */
int64_t codec_base36_decode(const char *s);

/* §3.3.3: 1234.56 -> "jU.56".  Our writer emits s3db.js's bytes whenever
 * codec_decimal_decode() gives n back exactly; otherwise (DEFECT R7: 1e-7
 * would be written "", and integers >= 2^53 may not survive base62 in
 * doubles) it writes the exponent form with a one-digit integer part and
 * a forced fraction: 1e-7 -> "1.0e-7", -5e-324 -> "-5.0e-324",
 * 1.2345678901234568e+20 -> "1.2345678901234568e+20".  s3db.js's own
 * decodeDecimal reads these exactly (integer part "1" -> 1, then
 * Number("1.0e-7")).  NaN/Inf -> "undefined". */
char *codec_decimal_encode(double n);
/* decodeDecimal; NaN when invalid and for "" (the defect's output). */
double codec_decimal_decode(const char *s);

/* datetime: epoch ms <-> base62; dateonly: days since epoch <-> base62.  */
char *codec_datetime_encode(int64_t epoch_ms);
int codec_datetime_decode(const char *s, int64_t *epoch_ms);  /* 0 ok  */
char *codec_dateonly_encode(int64_t days);
int codec_dateonly_decode(const char *s, int64_t *days);      /* 0 ok  */

/* ---- header values (§3.10) -------------------------------------------- */

/* metadataEncode for a string value as s3db.js 21.6.2 writes it, with the
 * writer rules of §7.3: the output is printable ASCII (W2: a dictionary
 * URL prefix whose remainder is not printable ASCII is not used; u:/b:
 * instead) and, when `literal` is set, the texts "null" and "undefined"
 * are written as b: so that they do not read back as null/absent (W6);
 * "font/woff2" is never written "d:f" (R6).  One more rule of ours:
 * printable values holding an RFC 2047 encoded-word ("=?UTF-8?B?..?=")
 * are written as b:, because our reader RFC 2047-decodes every header
 * value first (s3db.js decodes b: too).  Invalid UTF-8 in s is read as
 * U+FFFD, as JavaScript would have.  s NULL -> "null".
 * Invariant: codec_metadata_decode(codec_rfc2047_decode(encode(s, 1)))
 * gives s back (for valid UTF-8 s). */
char *codec_metadata_encode(const char *s, int literal);
/* Same for a value of len bytes that may contain NUL characters. */
char *codec_metadata_encode_len(const char *s, size_t len, int literal);

typedef enum codec_decoded {
	CODEC_VALUE = 0,   /* *out holds the decoded text                 */
	CODEC_NULL,        /* the value "null": a JSON null               */
	CODEC_ABSENT       /* the value "undefined": the field is absent  */
} codec_decoded;

/* metadataDecode (§3.10.2), checked byte for byte against s3db.js 21.6.2
 * on random values: b: is lenient base64, u: strict decodeURIComponent
 * (malformed -> unchanged), z:/z85: raw inflate (failure -> unchanged),
 * decoded bytes read as UTF-8 with U+FFFD.  One addition: the values
 * s3db.js writes for the texts "constructor", "toString", ... (the names
 * of Object.prototype's methods, which its dictionary mistakes for
 * entries: "d:function toString() { [native code] }") decode to those
 * names.  On CODEC_VALUE *out is malloc'd; otherwise *out is NULL.
 * Returns -1 when out of memory.  Apply codec_rfc2047_decode() first. */
int codec_metadata_decode(const char *s, char **out);
/* Same, with the byte count of *out in *len (optional): a decoded value
 * may hold NUL characters ("u:%00"), which the NUL-terminated form of
 * codec_metadata_decode() cuts short. */
int codec_metadata_decode_len(const char *s, char **out, size_t *len);

/* RFC 2047 encoded-words (=?UTF-8?B?...?= / =?UTF-8?Q?...?=, several words
 * separated by white space): decoded copy; a copy of s when s is not one.
 * Charsets UTF-8/US-ASCII, ISO-8859-1 and windows-1252; a word in another
 * charset or malformed is left as text; white space between two words is
 * dropped; bytes of UTF-8 words are joined before decoding (a character
 * may be split across words); the result is valid UTF-8 (U+FFFD). */
char *codec_rfc2047_decode(const char *s);

/* v7.4.1+ read heuristic (B.5.2): decoded text or a copy of s.  Accepts
 * only canonical base64 of valid UTF-8 with a byte >= 0x80 and no NUL;
 * an ASCII value that happens to be such base64 ("w6k=") is decoded
 * too — indistinguishable, as the spec says. */
char *codec_v74_decode(const char *s);
/* v7.3 raw Latin-1 values (B.5.1): s when valid UTF-8, else s converted
 * from Latin-1 to UTF-8. */
char *codec_latin1_to_utf8(const char *s, size_t len);
/* Valid UTF-8 copy of s (len bytes): ill-formed sequences become U+FFFD,
 * as Node's Buffer.toString('utf8') reads them. */
char *codec_utf8_sanitize(const char *s, size_t len);

/* ---- base64 / percent ------------------------------------------------- */

char *codec_base64_encode(const void *data, size_t len);
/* Lenient decoder as Node's Buffer.from(s, 'base64'): characters outside
 * the alphabet are skipped, '-' and '_' read as '+' and '/', padding is
 * optional and decoding stops at the first '='.  *len receives the byte
 * count; the result is NUL-terminated.  NULL when out of memory. */
unsigned char *codec_base64_decode(const char *s, size_t *len);
/* Strict: NULL when s is not canonical base64. */
unsigned char *codec_base64_decode_strict(const char *s, size_t *len);

char *codec_uri_encode_component(const char *s);  /* encodeURIComponent */
/* decodeURIComponent; NULL when malformed (or out of memory). */
char *codec_uri_decode_component(const char *s);

/* ---- arrays (§3.5) ---------------------------------------------------- */

/* Joins items with '|' escaping '\' and '|' with a backslash. */
char *codec_array_join(const char *const *items, size_t n);
/* Splits on unescaped '|' (a backslash escapes any next character).
 * "" gives 0 items.  *items is a malloc'd array of malloc'd strings. */
int codec_array_split(const char *s, char ***items, size_t *n);

#endif /* S3DB_CODEC_H */
