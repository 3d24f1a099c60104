/* pickle.c: a pickle machine for PyTorch state dicts that runs no code.
 * See pickle.h for what it accepts. Every value lives until the end of the
 * parse on one allocation chain, so sharing (memo, BINGET) and cycles are
 * harmless; containers hold pointers. */
#include "formats/pickle.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/dtype.h"

#define MAX_STACK (1u << 22)

enum kind {
	K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT,
	K_GLOBAL, K_STORAGE, K_TENSOR
};

static const char *const kind_names[] = {
	[K_NONE] = "None", [K_BOOL] = "bool", [K_INT] = "int", [K_FLOAT] = "float",
	[K_STR] = "str", [K_TUPLE] = "tuple", [K_LIST] = "list", [K_DICT] = "dict",
	[K_GLOBAL] = "global", [K_STORAGE] = "storage", [K_TENSOR] = "tensor",
};

/* The globals a state dict may name; nothing else is ever resolved. */
enum role { R_ODICT, R_TENSOR, R_PARAM, R_STORAGE };
static const struct glob {
	const char *module, *name;
	int role;
	int dtype;              /* R_STORAGE */
} globals[] = {
	{"collections", "OrderedDict", R_ODICT, 0},
	{"torch._utils", "_rebuild_tensor_v2", R_TENSOR, 0},
	{"torch._utils", "_rebuild_parameter", R_PARAM, 0},
	{"torch", "DoubleStorage", R_STORAGE, LP_F64},
	{"torch", "FloatStorage", R_STORAGE, LP_F32},
	{"torch", "HalfStorage", R_STORAGE, LP_F16},
	{"torch", "BFloat16Storage", R_STORAGE, LP_BF16},
	{"torch", "LongStorage", R_STORAGE, LP_I64},
	{"torch", "IntStorage", R_STORAGE, LP_I32},
	{"torch", "ShortStorage", R_STORAGE, LP_I16},
	{"torch", "CharStorage", R_STORAGE, LP_I8},
	{"torch", "ByteStorage", R_STORAGE, LP_U8},
	{"torch", "BoolStorage", R_STORAGE, LP_BOOL},
};

typedef struct obj {
	int kind;
	const struct glob *g;   /* K_GLOBAL */
	int64_t i;              /* K_INT, K_BOOL; K_STORAGE: numel */
	double f;               /* K_FLOAT */
	char *s;                /* K_STR (NUL-terminated, len bytes); K_STORAGE: key */
	size_t len;             /* K_STR bytes; K_TUPLE/K_LIST items; K_DICT pairs */
	struct obj **v;         /* items; K_DICT: key, value, key, value, ... */
	size_t cap;
	int dtype;              /* K_STORAGE */
	lp_pk_tensor *t;        /* K_TENSOR (name unset) */
	struct obj *chain;
} obj;

typedef struct {
	const uint8_t *p;
	size_t n, pos, at;      /* at: offset of the opcode being run */
	obj **stack;
	size_t sp, scap;
	size_t marks[LP_PK_MAX_MARKS];
	size_t nmarks;
	obj **memo;
	size_t memo_cap, memo_len;
	obj *chain;
	size_t nobj;
	char *err;
	size_t errlen;
} vm;

static const char *const opnames[256] = {
	['('] = "MARK", ['.'] = "STOP", ['0'] = "POP", ['1'] = "POP_MARK", ['2'] = "DUP",
	['F'] = "FLOAT", ['I'] = "INT", ['J'] = "BININT", ['K'] = "BININT1", ['L'] = "LONG",
	['M'] = "BININT2", ['N'] = "NONE", ['P'] = "PERSID", ['Q'] = "BINPERSID",
	['R'] = "REDUCE", ['S'] = "STRING", ['T'] = "BINSTRING", ['U'] = "SHORT_BINSTRING",
	['V'] = "UNICODE", ['X'] = "BINUNICODE", ['a'] = "APPEND", ['b'] = "BUILD",
	['c'] = "GLOBAL", ['d'] = "DICT", ['}'] = "EMPTY_DICT", ['e'] = "APPENDS",
	['g'] = "GET", ['h'] = "BINGET", ['i'] = "INST", ['j'] = "LONG_BINGET",
	['l'] = "LIST", [']'] = "EMPTY_LIST", ['o'] = "OBJ", ['p'] = "PUT",
	['q'] = "BINPUT", ['r'] = "LONG_BINPUT", ['s'] = "SETITEM", ['t'] = "TUPLE",
	[')'] = "EMPTY_TUPLE", ['u'] = "SETITEMS", ['G'] = "BINFLOAT",
	['B'] = "BINBYTES", ['C'] = "SHORT_BINBYTES",
	[0x80] = "PROTO", [0x81] = "NEWOBJ", [0x82] = "EXT1", [0x83] = "EXT2",
	[0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2", [0x87] = "TUPLE3",
	[0x88] = "NEWTRUE", [0x89] = "NEWFALSE", [0x8a] = "LONG1", [0x8b] = "LONG4",
	[0x8c] = "SHORT_BINUNICODE", [0x8d] = "BINUNICODE8", [0x8e] = "BINBYTES8",
	[0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET",
	[0x92] = "NEWOBJ_EX", [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE",
	[0x95] = "FRAME", [0x96] = "BYTEARRAY8", [0x97] = "NEXT_BUFFER",
	[0x98] = "READONLY_BUFFER",
};

const char *lp_pk_opcode_name(int op)
{
	return op >= 0 && op < 256 ? opnames[op] : NULL;
}

static int fail(vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(vm *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->err, m->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Printable, bounded copy of outside text for messages. */
static const char *shown(const char *s, size_t n, char *buf, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (k + 8 >= size) {
			memcpy(buf + k, "...", 3);
			k += 3;
			break;
		}
		if (isprint(c) && c != '\'' && c != '\\')
			buf[k++] = c;
		else
			k += snprintf(buf + k, size - k, "\\x%02x", c);
	}
	buf[k] = 0;
	return buf;
}

/* ---- values ---- */

static obj *new_obj(vm *m, int kind)
{
	if (m->nobj >= LP_PK_MAX_OBJECTS) {
		fail(m, "pickle builds more than %u values at byte %zu (limit)",
				LP_PK_MAX_OBJECTS, m->at);
		return NULL;
	}
	obj *o = lp_calloc(1, sizeof *o);
	o->kind = kind;
	o->chain = m->chain;
	m->chain = o;
	m->nobj++;
	return o;
}

static void free_all(vm *m)
{
	for (obj *o = m->chain, *next; o; o = next) {
		next = o->chain;
		free(o->s);
		free(o->v);
		free(o->t);
		free(o);
	}
	m->chain = NULL;
	free(m->stack);
	free(m->memo);
}

static void add_item(obj *c, obj *x)
{
	lp_grow((void **)&c->v, &c->cap, c->len + 1, sizeof *c->v);
	c->v[c->len++] = x;
}

/* ---- stack ---- */

static int push(vm *m, obj *o)
{
	if (!o)
		return -1;
	if (m->sp >= MAX_STACK)
		return fail(m, "pickle stack deeper than %u at byte %zu (limit)", MAX_STACK, m->at);
	lp_grow((void **)&m->stack, &m->scap, m->sp + 1, sizeof *m->stack);
	m->stack[m->sp++] = o;
	return 0;
}

/* Items above the current mark: the base of the stack unless one is set. */
static size_t floor_of(const vm *m)
{
	return m->nmarks ? m->marks[m->nmarks - 1] : 0;
}

static obj *pop(vm *m)
{
	if (m->sp <= floor_of(m)) {
		fail(m, "%s at byte %zu: stack underflow", opnames[m->p[m->at]], m->at);
		return NULL;
	}
	return m->stack[--m->sp];
}

static obj *top(vm *m)
{
	if (m->sp <= floor_of(m)) {
		fail(m, "%s at byte %zu: stack underflow", opnames[m->p[m->at]], m->at);
		return NULL;
	}
	return m->stack[m->sp - 1];
}

/* Pop to the last mark: *items and *count are the values above it. */
static int pop_mark(vm *m, obj ***items, size_t *count)
{
	if (!m->nmarks)
		return fail(m, "%s at byte %zu: no MARK", opnames[m->p[m->at]], m->at);
	size_t base = m->marks[--m->nmarks];
	*items = m->stack + base;
	*count = m->sp - base;
	m->sp = base;
	return 0;
}

/* ---- reading the opcode stream ---- */

static int need(vm *m, size_t k)
{
	if (m->n - m->pos < k)
		return fail(m, "pickle ends inside %s at byte %zu", opnames[m->p[m->at]], m->at);
	return 0;
}

static uint64_t arg_le(vm *m, int k)
{
	uint64_t v = 0;
	for (int i = k - 1; i >= 0; i--)
		v = v << 8 | m->p[m->pos + i];
	m->pos += k;
	return v;
}

static obj *new_str(vm *m, const uint8_t *s, size_t len)
{
	obj *o = new_obj(m, K_STR);
	if (!o)
		return NULL;
	o->s = lp_malloc(len + 1);
	memcpy(o->s, s, len);
	o->s[len] = 0;
	o->len = len;
	return o;
}

static int op_unicode(vm *m, int lenbytes)
{
	if (need(m, lenbytes))
		return -1;
	uint64_t len = arg_le(m, lenbytes);
	if (len > m->n - m->pos)
		return fail(m, "%s at byte %zu: %llu bytes of string run past the end",
				opnames[m->p[m->at]], m->at, (unsigned long long)len);
	obj *o = new_str(m, m->p + m->pos, len);
	m->pos += len;
	return push(m, o);
}

static int push_int(vm *m, int kind, int64_t v)
{
	obj *o = new_obj(m, kind);
	if (o)
		o->i = v;
	return push(m, o);
}

static int op_long1(vm *m)
{
	if (need(m, 1))
		return -1;
	int k = m->p[m->pos++];
	if (k > 8)
		return fail(m, "LONG1 at byte %zu: a %d-byte integer is too large", m->at, k);
	if (need(m, k))
		return -1;
	uint64_t v = arg_le(m, k);
	if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1)
		v |= ~(uint64_t)0 << (8 * k);   /* sign-extend */
	return push_int(m, K_INT, (int64_t)v);
}

static int op_binfloat(vm *m)
{
	if (need(m, 8))
		return -1;
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | m->p[m->pos + i];  /* big-endian */
	m->pos += 8;
	obj *o = new_obj(m, K_FLOAT);
	if (o)
		memcpy(&o->f, &u, 8);
	return push(m, o);
}

static int op_tuple(vm *m, int k)       /* k < 0: from the mark */
{
	obj **items, *t = new_obj(m, K_TUPLE);
	size_t count = 0;
	if (!t)
		return -1;
	if (k < 0) {
		if (pop_mark(m, &items, &count))
			return -1;
	} else {
		count = k;
		if (m->sp - floor_of(m) < count)
			return fail(m, "%s at byte %zu: stack underflow", opnames[m->p[m->at]],
					m->at);
		m->sp -= count;
		items = m->stack + m->sp;
	}
	for (size_t i = 0; i < count; i++)
		add_item(t, items[i]);
	return push(m, t);
}

static int op_append(vm *m, int many)
{
	obj **items, *x;
	size_t count = 1;
	if (many) {
		if (pop_mark(m, &items, &count))
			return -1;
	} else {
		if (!(x = pop(m)))
			return -1;
		items = &x;
	}
	obj *l = top(m);
	if (!l)
		return -1;
	if (l->kind != K_LIST)
		return fail(m, "%s at byte %zu: appending to a %s, not a list",
				opnames[m->p[m->at]], m->at, kind_names[l->kind]);
	for (size_t i = 0; i < count; i++)
		add_item(l, items[i]);
	return 0;
}

static int op_setitem(vm *m, int many)
{
	obj **items, *kv[2];
	size_t count = 2;
	if (many) {
		if (pop_mark(m, &items, &count))
			return -1;
		if (count % 2)
			return fail(m, "SETITEMS at byte %zu: odd number of items", m->at);
	} else {
		if (!(kv[1] = pop(m)) || !(kv[0] = pop(m)))
			return -1;
		items = kv;
	}
	obj *d = top(m);
	if (!d)
		return -1;
	if (d->kind != K_DICT)
		return fail(m, "%s at byte %zu: setting items of a %s, not a dict",
				opnames[m->p[m->at]], m->at, kind_names[d->kind]);
	for (size_t i = 0; i < count; i++)
		add_item(d, items[i]);  /* len counts keys and values */
	return 0;
}

/* ---- memo ---- */

static int memo_put(vm *m, uint64_t idx)
{
	obj *o = top(m);
	if (!o)
		return -1;
	if (idx >= LP_PK_MAX_MEMO)
		return fail(m, "%s at byte %zu: memo index %llu is past the limit of %u",
				opnames[m->p[m->at]], m->at, (unsigned long long)idx, LP_PK_MAX_MEMO);
	if (idx >= m->memo_cap) {
		size_t old = m->memo_cap;
		lp_grow((void **)&m->memo, &m->memo_cap, idx + 1, sizeof *m->memo);
		memset(m->memo + old, 0, (m->memo_cap - old) * sizeof *m->memo);
	}
	if (!m->memo[idx])
		m->memo_len++;
	m->memo[idx] = o;
	return 0;
}

static int memo_get(vm *m, uint64_t idx)
{
	if (idx >= m->memo_cap || !m->memo[idx])
		return fail(m, "%s at byte %zu: memo entry %llu was never set",
				opnames[m->p[m->at]], m->at, (unsigned long long)idx);
	return push(m, m->memo[idx]);
}

/* ---- globals and calls ---- */

static int find_global(vm *m, const char *mod, size_t modlen, const char *name, size_t namelen)
{
	for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
		if (strlen(globals[i].module) == modlen && !memcmp(globals[i].module, mod, modlen) &&
				strlen(globals[i].name) == namelen &&
				!memcmp(globals[i].name, name, namelen)) {
			obj *o = new_obj(m, K_GLOBAL);
			if (o)
				o->g = &globals[i];
			return push(m, o);
		}
	char a[128], b[128];
	return fail(m, "refusing global '%s %s' at byte %zu: a state dict needs only "
			"OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and "
			"torch storage types", shown(mod, modlen, a, sizeof a),
			shown(name, namelen, b, sizeof b), m->at);
}

static int op_global(vm *m)
{
	const char *s = (const char *)m->p + m->pos;
	size_t left = m->n - m->pos;
	const char *nl1 = memchr(s, '\n', left);
	const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', left - (nl1 + 1 - s)) : NULL;
	if (!nl2)
		return fail(m, "pickle ends inside GLOBAL at byte %zu", m->at);
	m->pos += nl2 + 1 - s;
	return find_global(m, s, nl1 - s, nl1 + 1, nl2 - nl1 - 1);
}

static int op_stack_global(vm *m)
{
	obj *name = pop(m), *mod = name ? pop(m) : NULL;
	if (!mod)
		return -1;
	if (mod->kind != K_STR || name->kind != K_STR)
		return fail(m, "STACK_GLOBAL at byte %zu: module and name must be strings",
				m->at);
	return find_global(m, mod->s, mod->len, name->s, name->len);
}

static const char *global_name(const struct glob *g, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", g->module, g->name);
	return buf;
}

/* ('storage', torch.<T>Storage, key, location, numel) */
static int op_binpersid(vm *m)
{
	obj *pid = pop(m);
	if (!pid)
		return -1;
	obj **v = pid->v;
	if (pid->kind != K_TUPLE || pid->len != 5 || v[0]->kind != K_STR ||
			strcmp(v[0]->s, "storage") || v[1]->kind != K_GLOBAL ||
			v[2]->kind != K_STR || v[3]->kind != K_STR || v[4]->kind != K_INT)
		return fail(m, "BINPERSID at byte %zu: not a torch storage id ('storage', "
				"type, key, location, numel)", m->at);
	char g[96];
	if (v[1]->g->role != R_STORAGE)
		return fail(m, "BINPERSID at byte %zu: '%s' is not a storage type", m->at,
				global_name(v[1]->g, g, sizeof g));
	if (v[4]->i < 0 || !v[2]->len || memchr(v[2]->s, 0, v[2]->len) || strchr(v[2]->s, '/'))
		return fail(m, "BINPERSID at byte %zu: bad storage key or size", m->at);
	obj *s = new_obj(m, K_STORAGE);
	if (!s)
		return -1;
	s->dtype = v[1]->g->dtype;
	s->s = lp_strdup(v[2]->s);
	s->i = v[4]->i;
	return push(m, s);
}

static int is_int_tuple(const obj *o, int maxrank)
{
	if (o->kind != K_TUPLE || o->len > (size_t)maxrank)
		return 0;
	for (size_t i = 0; i < o->len; i++)
		if (o->v[i]->kind != K_INT || o->v[i]->i < 0)
			return 0;
	return 1;
}

/* The view must lie in the storage; numel and the furthest element are
 * computed without overflow. */
static int check_view(vm *m, lp_pk_tensor *t)
{
	uint64_t numel = 1, last = t->offset, expect = 1;
	t->contiguous = 1;
	for (int d = t->rank - 1; d >= 0; d--) {
		if (t->shape[d] && numel > UINT64_MAX / t->shape[d])
			return fail(m, "REDUCE at byte %zu: tensor size overflows", m->at);
		numel *= t->shape[d];
		if (t->shape[d] > 1) {
			if (t->stride[d] != expect)
				t->contiguous = 0;
			expect *= t->shape[d];
		}
	}
	t->numel = numel;
	if (!numel)
		return 0;
	for (int d = 0; d < t->rank; d++) {
		uint64_t span = t->shape[d] - 1;
		if (t->stride[d] && span > (UINT64_MAX - last) / t->stride[d])
			return fail(m, "REDUCE at byte %zu: tensor view overflows", m->at);
		last += span * t->stride[d];
	}
	if (last >= t->storage_numel)
		return fail(m, "REDUCE at byte %zu: tensor view (offset %llu, up to element "
				"%llu) lies outside its storage of %llu elements", m->at,
				(unsigned long long)t->offset, (unsigned long long)last,
				(unsigned long long)t->storage_numel);
	return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static obj *rebuild_tensor(vm *m, obj *args)
{
	obj **a = args->v;
	if ((args->len != 6 && args->len != 7) || a[0]->kind != K_STORAGE ||
			a[1]->kind != K_INT || a[1]->i < 0 || !is_int_tuple(a[2], LP_PK_MAX_RANK) ||
			!is_int_tuple(a[3], LP_PK_MAX_RANK) || a[2]->len != a[3]->len ||
			a[4]->kind != K_BOOL || a[5]->kind != K_DICT ||
			(args->len == 7 && a[6]->kind != K_NONE && a[6]->kind != K_DICT)) {
		fail(m, "REDUCE at byte %zu: _rebuild_tensor_v2 needs (storage, offset, size, "
				"stride, requires_grad, hooks) with at most %d dimensions", m->at,
				LP_PK_MAX_RANK);
		return NULL;
	}
	obj *o = new_obj(m, K_TENSOR);
	if (!o)
		return NULL;
	lp_pk_tensor *t = o->t = lp_calloc(1, sizeof *t);
	t->dtype = a[0]->dtype;
	t->storage = a[0]->s;   /* borrowed; copied when the dict is taken */
	t->storage_numel = a[0]->i;
	t->offset = a[1]->i;
	t->rank = a[2]->len;
	for (int d = 0; d < t->rank; d++) {
		t->shape[d] = a[2]->v[d]->i;
		t->stride[d] = a[3]->v[d]->i;
	}
	return check_view(m, t) ? NULL : o;
}

static int op_reduce(vm *m)
{
	obj *args = pop(m), *f = args ? pop(m) : NULL, *r = NULL;
	char g[96];
	if (!f)
		return -1;
	if (f->kind != K_GLOBAL)
		return fail(m, "REDUCE at byte %zu: calling a %s is not allowed", m->at,
				kind_names[f->kind]);
	if (args->kind != K_TUPLE)
		return fail(m, "REDUCE at byte %zu: arguments are a %s, not a tuple", m->at,
				kind_names[args->kind]);
	switch (f->g->role) {
	case R_ODICT:
		if (args->len)
			return fail(m, "REDUCE at byte %zu: OrderedDict called with arguments",
					m->at);
		r = new_obj(m, K_DICT);
		break;
	case R_TENSOR:
		r = rebuild_tensor(m, args);
		break;
	case R_PARAM:   /* _rebuild_parameter(tensor, requires_grad, hooks) */
		if (args->len != 3 || args->v[0]->kind != K_TENSOR)
			return fail(m, "REDUCE at byte %zu: _rebuild_parameter needs (tensor, "
					"requires_grad, hooks)", m->at);
		r = args->v[0];
		break;
	default:
		return fail(m, "REDUCE at byte %zu: calling '%s' is not allowed", m->at,
				global_name(f->g, g, sizeof g));
	}
	return r ? push(m, r) : -1;
}

static int op_build(vm *m)
{
	obj *state = pop(m), *o = state ? top(m) : NULL;
	if (!o)
		return -1;
	if (o->kind != K_DICT || (state->kind != K_DICT && state->kind != K_NONE))
		return fail(m, "BUILD at byte %zu: setting the state of a %s is not allowed "
				"(only a dict's attributes are accepted, and ignored)", m->at,
				kind_names[o->kind]);
	return 0;
}

/* ---- the machine ---- */

static int step(vm *m, obj **result)
{
	int op = m->p[m->pos++];
	switch (op) {
	case 0x80:      /* PROTO */
		if (need(m, 1))
			return -1;
		if (m->p[m->pos] < 2 || m->p[m->pos] > 5)
			return fail(m, "pickle protocol %d at byte %zu is not supported (2 to 5 "
					"are)", m->p[m->pos], m->at);
		m->pos++;
		return 0;
	case 0x95:      /* FRAME: a length prefix; the opcodes follow inline */
		if (need(m, 8))
			return -1;
		if (arg_le(m, 8) > m->n - m->pos)
			return fail(m, "FRAME at byte %zu runs past the end", m->at);
		return 0;
	case '.':       /* STOP */
		return (*result = pop(m)) ? 1 : -1;
	case '(':
		if (m->nmarks >= LP_PK_MAX_MARKS)
			return fail(m, "MARK at byte %zu: more than %d nested marks (limit)",
					m->at, LP_PK_MAX_MARKS);
		m->marks[m->nmarks++] = m->sp;
		return 0;
	case '0':
		return pop(m) ? 0 : -1;
	case 'N':
		return push(m, new_obj(m, K_NONE));
	case 0x88:
	case 0x89:
		return push_int(m, K_BOOL, op == 0x88);
	case 'J':
		return need(m, 4) ? -1 : push_int(m, K_INT, (int32_t)(uint32_t)arg_le(m, 4));
	case 'K':
		return need(m, 1) ? -1 : push_int(m, K_INT, arg_le(m, 1));
	case 'M':
		return need(m, 2) ? -1 : push_int(m, K_INT, arg_le(m, 2));
	case 0x8a:
		return op_long1(m);
	case 'G':
		return op_binfloat(m);
	case 'X':
		return op_unicode(m, 4);
	case 0x8c:
		return op_unicode(m, 1);
	case 0x8d:
		return op_unicode(m, 8);
	case ')':
		return op_tuple(m, 0);
	case 't':
		return op_tuple(m, -1);
	case 0x85: case 0x86: case 0x87:
		return op_tuple(m, op - 0x84);
	case ']':
		return push(m, new_obj(m, K_LIST));
	case '}':
		return push(m, new_obj(m, K_DICT));
	case 'a':
	case 'e':
		return op_append(m, op == 'e');
	case 's':
	case 'u':
		return op_setitem(m, op == 'u');
	case 'q':
		return need(m, 1) ? -1 : memo_put(m, arg_le(m, 1));
	case 'r':
		return need(m, 4) ? -1 : memo_put(m, arg_le(m, 4));
	case 0x94:
		return memo_put(m, m->memo_len);
	case 'h':
		return need(m, 1) ? -1 : memo_get(m, arg_le(m, 1));
	case 'j':
		return need(m, 4) ? -1 : memo_get(m, arg_le(m, 4));
	case 'c':
		return op_global(m);
	case 0x93:
		return op_stack_global(m);
	case 'R':
		return op_reduce(m);
	case 'b':
		return op_build(m);
	case 'Q':
		return op_binpersid(m);
	}
	if (opnames[op])
		return fail(m, "opcode %s (0x%02x) at byte %zu is not supported: a state dict "
				"does not need it", opnames[op], op, m->at);
	return fail(m, "byte 0x%02x at byte %zu is not a pickle opcode", op, m->at);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(((const lp_pk_tensor *)a)->name, ((const lp_pk_tensor *)b)->name);
}

/* The top dict becomes the tensor list: string keys, tensor values. */
static int take_dict(vm *m, obj *d, lp_pk_state_dict *sd)
{
	char buf[128];
	if (d->kind != K_DICT)
		return fail(m, "the pickle holds a %s, not a state dict (a dict of tensors)",
				kind_names[d->kind]);
	size_t n = d->len / 2;
	sd->t = lp_calloc(n ? n : 1, sizeof *sd->t);
	for (size_t i = 0; i < n; i++) {
		obj *k = d->v[2 * i], *v = d->v[2 * i + 1];
		if (k->kind != K_STR || !k->len || memchr(k->s, 0, k->len))
			return fail(m, "state dict key %zu is a %s, not a name", i,
					k->kind == K_STR ? "empty string or one with a NUL" :
					kind_names[k->kind]);
		if (v->kind != K_TENSOR)
			return fail(m, "state dict entry '%s' holds a %s, not a tensor",
					shown(k->s, k->len, buf, sizeof buf), kind_names[v->kind]);
		lp_pk_tensor *t = &sd->t[sd->n++];
		*t = *v->t;
		t->name = lp_strdup(k->s);
		t->storage = lp_strdup(v->t->storage);
	}
	/* duplicate names would make the dict ambiguous */
	lp_pk_tensor *sorted = lp_malloc((n ? n : 1) * sizeof *sorted);
	memcpy(sorted, sd->t, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, cmp_names);
	int rc = 0;
	for (size_t i = 1; i < n && !rc; i++)
		if (!strcmp(sorted[i].name, sorted[i - 1].name))
			rc = fail(m, "state dict entry '%s' appears twice",
					shown(sorted[i].name, strlen(sorted[i].name), buf, sizeof buf));
	free(sorted);
	return rc;
}

int lp_pk_state_dict_parse(const void *buf, size_t n, lp_pk_state_dict *sd,
		char *err, size_t errlen)
{
	vm m = {.p = buf, .n = n, .err = err, .errlen = errlen};
	obj *result = NULL;
	int rc = 0;
	memset(sd, 0, sizeof *sd);
	while (rc == 0) {
		if (m.pos >= m.n) {
			rc = fail(&m, "pickle ends at byte %zu without STOP", m.pos);
			break;
		}
		m.at = m.pos;
		rc = step(&m, &result);
	}
	if (rc == 1)
		rc = take_dict(&m, result, sd);
	free_all(&m);
	if (rc) {
		lp_pk_state_dict_free(sd);
		return -1;
	}
	return 0;
}

void lp_pk_state_dict_free(lp_pk_state_dict *sd)
{
	for (size_t i = 0; i < sd->n; i++) {
		free(sd->t[i].name);
		free(sd->t[i].storage);
	}
	free(sd->t);
	sd->t = NULL;
	sd->n = 0;
}
