/* SPDX-License-Identifier: MIT */
/* Admission helpers: token bucket, per-source counts, latency samples;
 * small formatting helpers of the CLI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/internal.h"

uint64_t pst_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- token bucket ------------------------------------------------------ */

void pst_bucket_init(struct pst_bucket *b, double rate, uint64_t now_ns)
{
	b->rate = rate;
	/* A burst of one second's worth (at least one token) lets a client
	 * that keeps to the rate on average through without jitter refusals. */
	b->burst = rate < 1.0 ? 1.0 : rate;
	b->tokens = b->burst;
	b->last_ns = now_ns;
}

bool pst_bucket_take(struct pst_bucket *b, uint64_t now_ns)
{
	if (b->rate <= 0)
		return true;
	if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * b->rate / 1e9;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ns = now_ns;
	}
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

/* ---- per-source table -------------------------------------------------- */

static uint64_t srckey_hash(const uint8_t *k)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < PST_SRCKEY_LEN; i++) {
		h ^= k[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct pst_srcent *srctab_find(const struct pst_srctab *t, const uint8_t *key)
{
	if (!t->cap)
		return NULL;
	size_t mask = t->cap - 1;
	for (size_t i = srckey_hash(key) & mask;; i = (i + 1) & mask) {
		struct pst_srcent *e = &t->slots[i];
		if (!e->count)
			return NULL;
		if (!memcmp(e->key, key, PST_SRCKEY_LEN))
			return e;
	}
}

static void srctab_put(struct pst_srctab *t, const uint8_t *key, uint32_t count)
{
	size_t mask = t->cap - 1;
	size_t i = srckey_hash(key) & mask;
	while (t->slots[i].count)
		i = (i + 1) & mask;
	memcpy(t->slots[i].key, key, PST_SRCKEY_LEN);
	t->slots[i].count = count;
}

static int srctab_grow(struct pst_srctab *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 64;
	struct pst_srcent *old = t->slots;
	size_t ocap = t->cap;

	t->slots = calloc(ncap, sizeof(*t->slots));
	if (!t->slots) {
		t->slots = old;
		return -ENOMEM;
	}
	t->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].count)
			srctab_put(t, old[i].key, old[i].count);
	free(old);
	return 0;
}

void pst_srctab_free(struct pst_srctab *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

uint32_t pst_srctab_get(const struct pst_srctab *t, const uint8_t *key)
{
	const struct pst_srcent *e = srctab_find(t, key);
	return e ? e->count : 0;
}

int pst_srctab_inc(struct pst_srctab *t, const uint8_t *key)
{
	struct pst_srcent *e = srctab_find(t, key);
	if (e) {
		e->count++;
		return 0;
	}
	/* keep the load factor under 1/2 */
	if ((t->used + 1) * 2 > t->cap) {
		int r = srctab_grow(t);
		if (r < 0)
			return r;
	}
	srctab_put(t, key, 1);
	t->used++;
	return 0;
}

void pst_srctab_dec(struct pst_srctab *t, const uint8_t *key)
{
	struct pst_srcent *e = srctab_find(t, key);
	if (!e)
		return;
	if (--e->count)
		return;
	/* backward-shift deletion keeps probe chains intact without tombstones */
	size_t mask = t->cap - 1;
	size_t hole = (size_t)(e - t->slots);
	for (size_t j = (hole + 1) & mask; t->slots[j].count; j = (j + 1) & mask) {
		size_t home = srckey_hash(t->slots[j].key) & mask;
		/* move j into the hole if its home is not in (hole, j] cyclically */
		bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!in_range) {
			t->slots[hole] = t->slots[j];
			t->slots[j].count = 0;
			hole = j;
		}
	}
	t->slots[hole].count = 0;
	t->used--;
}

/* ---- latency samples --------------------------------------------------- */

void pst_latring_add(struct pst_latring *r, uint32_t us)
{
	r->us[r->pos] = us;
	r->pos = (r->pos + 1) % PST_LAT_SAMPLES;
	if (r->n < PST_LAT_SAMPLES)
		r->n++;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

uint32_t pst_latring_pct(const struct pst_latring *r, double pct)
{
	uint32_t tmp[PST_LAT_SAMPLES];

	if (!r->n)
		return 0;
	memcpy(tmp, r->us, r->n * sizeof(tmp[0]));
	qsort(tmp, r->n, sizeof(tmp[0]), cmp_u32);
	/* nearest-rank */
	size_t rank = (size_t)(pct / 100.0 * (double)r->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > r->n)
		rank = r->n;
	return tmp[rank - 1];
}

bool pst_throttle_pass(struct pst_throttle *t, uint64_t now_ns, uint64_t *suppressed)
{
	if (t->last_ns && now_ns - t->last_ns < PST_THROTTLE_NS) {
		t->suppressed++;
		return false;
	}
	*suppressed = t->suppressed;
	t->suppressed = 0;
	t->last_ns = now_ns;
	return true;
}

void pst_mark_truncated(char *buf, size_t len)
{
	/* a message cut at its buffer's end says so */
	if (len >= 4)
		memcpy(buf + len - 4, "...", 4);
}

void pst_fmt_bytes(char *b, size_t n, double v)
{
	if (v >= 1 << 30)
		snprintf(b, n, "%.1fG", v / (1 << 30));
	else if (v >= 1 << 20)
		snprintf(b, n, "%.1fM", v / (1 << 20));
	else
		snprintf(b, n, "%.0fK", v / 1024);
}
