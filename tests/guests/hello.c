/*
 * A minimal wasmhost guest in C, written against docs/abi.md by hand (no SDK):
 * it answers a fixed page that echoes the request path.
 *
 * Build it as a WASI *reactor* (docs/abi.md §1.1), with Debian's clang, lld,
 * wasi-libc and libclang-rt-dev-wasm32:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -o hello.wasm hello.c
 *
 * A reactor exports `_initialize`, which runs the C constructors; the host
 * calls it once per instance before anything else, and destructors never
 * run. The page says how often the constructor and the destructor below ran
 * in this instance: 1 and 0 in a reactor. Built as a command instead, every
 * export would run the constructors before it and the destructors after it.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* Runs in `_initialize`: once per instance, that is once per request. */
static int constructed;
__attribute__((constructor)) static void count_construction(void) { constructed++; }

/* Never runs in a reactor. */
static int destructed;
__attribute__((destructor)) static void count_destruction(void) { destructed++; }

/* A count as one digit (9 for more). */
static char digit(int n) { return (char)('0' + (n < 0 ? 0 : n > 9 ? 9 : n)); }

EXPORT("wasmhost_abi_version") int32_t wasmhost_abi_version(void) { return 1; }

/* The host writes the request here; 0 means no memory (the request gets 500). */
EXPORT("wasmhost_alloc") void *wasmhost_alloc(int32_t len) {
    return malloc(len > 0 ? (size_t)len : 1);
}

/* The response meta: a fixed status and content type. */
static const char META[] =
    "{\"status\":200,\"headers\":[[\"Content-Type\",\"text/plain; charset=utf-8\"]]}";

/*
 * Finds the string value of "path" in the request meta (JSON). The host
 * writes the fields in a fixed order with no spaces (docs/abi.md §5.1), so
 * a plain search finds it; a JSON escape in the path is echoed as it is.
 */
static const char *find_path(const char *meta, size_t meta_len, size_t *path_len) {
    static const char key[] = "\"path\":\"";
    const size_t key_len = sizeof key - 1;
    for (size_t i = 0; i + key_len <= meta_len; i++) {
        if (memcmp(meta + i, key, key_len) != 0) continue;
        const char *start = meta + i + key_len;
        size_t n = 0;
        while (start + n < meta + meta_len && start[n] != '"') {
            n += start[n] == '\\' ? 2 : 1;
        }
        *path_len = start + n <= meta + meta_len ? n : 0;
        return start;
    }
    *path_len = 0;
    return "";
}

/* Appends `len` bytes at `*out`. */
static void put(uint8_t **out, const void *bytes, size_t len) {
    memcpy(*out, bytes, len);
    *out += len;
}

/* Handles the request at ptr..ptr+len: [meta_len: u32 LE][meta][body]. */
EXPORT("wasmhost_handle") int64_t wasmhost_handle(const uint8_t *ptr, int32_t len) {
    uint32_t meta_len = 0;
    if (len >= 4) memcpy(&meta_len, ptr, 4); /* Wasm is little-endian. */
    if (meta_len > (uint32_t)len - 4) meta_len = 0;
    size_t path_len;
    const char *path = find_path((const char *)ptr + 4, meta_len, &path_len);

    static const char greeting[] = "Hello from C!\npath: ";
    char counts[] = "\nconstructors run: C\ndestructors run: D\n";
    *strchr(counts, 'C') = digit(constructed);
    *strchr(counts, 'D') = digit(destructed);
    size_t body_len = sizeof greeting - 1 + path_len + sizeof counts - 1;
    uint32_t meta_out = sizeof META - 1;
    size_t total = 4 + meta_out + body_len;

    /* The host reads the response after this returns; it is never freed
     * (the instance is dropped after the request). */
    uint8_t *response = malloc(total);
    if (response == NULL) abort();
    uint8_t *out = response;
    put(&out, &meta_out, 4);
    put(&out, META, meta_out);
    put(&out, greeting, sizeof greeting - 1);
    put(&out, path, path_len);
    put(&out, counts, sizeof counts - 1);
    return (int64_t)((uint64_t)(uintptr_t)response << 32 | (uint64_t)total);
}
