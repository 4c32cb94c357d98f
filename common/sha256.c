/*
 * SHA-256 through OpenSSL's low-level interface. OpenSSL 3 marks it
 * deprecated in favour of EVP, but EVP's first digest in a process loads the
 * default provider, ~0.7 ms here: a third of a whole restore. The low-level
 * calls use the same (SHA-NI accelerated) code without that set-up.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "common/common.h"

#include <openssl/sha.h>

_Static_assert(sizeof(struct sha256_state) >= sizeof(SHA256_CTX), "sha256_state too small");

void sha256_digest(const void *data, size_t len, uint8_t digest[32])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, data, len);
	SHA256_Final(digest, &ctx);
}

void sha256_begin(struct sha256_state *state)
{
	SHA256_Init((SHA256_CTX *)state);
}

void sha256_add(struct sha256_state *state, const void *data, size_t len)
{
	SHA256_Update((SHA256_CTX *)state, data, len);
}

void sha256_end(struct sha256_state *state, uint8_t digest[32])
{
	SHA256_Final(digest, (SHA256_CTX *)state);
}
