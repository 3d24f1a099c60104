// spm.cc: the C interface of spm.h over sentencepiece::SentencePieceProcessor.
//
// Nothing here throws into C: every entry point catches, and reports
// through err. Encode and Decode are const members of the processor, so
// concurrent calls on one loaded model are safe.
#include "text/spm.h"

#include <sentencepiece_processor.h>

extern "C" {
#include "formats/spm_model.h"
}

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/stat.h>
#include <string>
#include <vector>

struct lp_spm {
	sentencepiece::SentencePieceProcessor sp;
	int size;
	// For encoding BPE models with byte fallback, a second processor of
	// the same model with byte fallback off (see load_fast), and the id
	// of each byte piece <0xXX>; null when not used.
	sentencepiece::SentencePieceProcessor *fast;
	int32_t byte_id[256];
};

// ---- the byte-fallback encoder ----
//
// With byte fallback, the library (0.1.97) turns each byte of an unknown
// piece into its <0xXX> piece by formatting the name with snprintf and
// looking it up in a hash table: on Chinese text with LLaMA's tokenizer
// that was a fifth of tok's time. A BPE model's segmentation does not
// depend on byte fallback (the flag is read only when the pieces are
// turned into ids), so a copy of the model with the flag off, and its
// byte pieces made control pieces (which text never matches, as byte
// pieces are not), gives the same pieces with each run of unknown
// characters as one unknown piece; lp_spm_encode writes the ids of that
// run's bytes from a table. t1201 checks the result against the library.

// Read a varint at *p (below end); false when malformed.
static bool varint(const uint8_t *&p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; p < end && shift < 64; shift += 7) {
		uint8_t b = *p++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

// In the message [p, end), set every varint field `field` whose value is
// `from` (one byte) to `to` (one byte), in place. The number of fields
// changed, or -1 when the message is malformed.
static int patch_varint(uint8_t *p, uint8_t *end, uint32_t field, uint8_t from, uint8_t to,
		int (*inner)(uint8_t *, uint8_t *) = nullptr, uint32_t inner_field = 0)
{
	int n = 0;
	const uint8_t *q = p;
	while (q < end) {
		uint64_t tag, v;
		if (!varint(q, end, &tag))
			return -1;
		uint32_t f = (uint32_t)(tag >> 3), wt = tag & 7;
		if (wt == 0) {
			uint8_t *at = const_cast<uint8_t *>(q);
			if (!varint(q, end, &v))
				return -1;
			if (f == field && q == at + 1 && *at == from) {
				*at = to;
				n++;
			}
		} else if (wt == 1 || wt == 5) {
			if ((size_t)(end - q) < (wt == 1 ? 8u : 4u))
				return -1;
			q += wt == 1 ? 8 : 4;
		} else if (wt == 2) {
			if (!varint(q, end, &v) || v > (uint64_t)(end - q))
				return -1;
			if (inner && f == inner_field) {
				int k = inner(const_cast<uint8_t *>(q), const_cast<uint8_t *>(q) + v);
				if (k < 0)
					return -1;
				n += k;
			}
			q += v;
		} else {
			return -1;
		}
	}
	return n;
}

// SentencePiece: type (3) BYTE (6) -> CONTROL (3)
static int byte_to_control(uint8_t *p, uint8_t *end) { return patch_varint(p, end, 3, 6, 3); }
// TrainerSpec: byte_fallback (35) true -> false
static int fallback_off(uint8_t *p, uint8_t *end) { return patch_varint(p, end, 35, 1, 0); }
// ModelProto: pieces (1) and trainer_spec (2)
static int patch_pieces(uint8_t *p, uint8_t *end)
{
	return patch_varint(p, end, 0, 0, 0, byte_to_control, 1);
}

// The fast encoder of m, when m is a BPE model with byte fallback and 256
// byte pieces; otherwise m->fast stays null.
static void load_fast(lp_spm *m, const std::string &bytes)
{
	lp_spm_model parsed;
	char err[256];
	if (lp_spm_model_parse(bytes.data(), bytes.size(), &parsed, err, sizeof err) != 0)
		return;
	bool bpe = parsed.model_type == LP_SPM_BPE && parsed.byte_fallback;
	lp_spm_model_free(&parsed);
	if (!bpe)
		return;
	for (int b = 0; b < 256; b++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", b);
		int id = m->sp.PieceToId(name);
		if (id < 0 || id >= m->size || !m->sp.IsByte(id))
			return;
		m->byte_id[b] = id;
	}
	std::string patched = bytes;
	uint8_t *p = reinterpret_cast<uint8_t *>(&patched[0]), *end = p + patched.size();
	int pieces = patch_pieces(p, end);
	int flags = patch_varint(p, end, 0, 0, 0, fallback_off, 2);
	if (pieces != 256 || flags != 1)
		return;
	auto *fast = new sentencepiece::SentencePieceProcessor();
	if (!fast->LoadFromSerializedProto(patched).ok() || fast->GetPieceSize() != m->size ||
			fast->unk_id() != m->sp.unk_id()) {
		delete fast;
		return;
	}
	m->fast = fast;
}

static void set_err(char *err, size_t errlen, const std::string &msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg.c_str());
}

extern "C" lp_spm *lp_spm_load(const char *path, char *err, size_t errlen)
{
	lp_spm *m = nullptr;
	try {
		FILE *f = fopen(path, "rb");
		if (!f) {
			set_err(err, errlen, std::string(path) + ": " + strerror(errno));
			return nullptr;
		}
		struct stat sb;
		int isdir = fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode);
		fclose(f);
		if (isdir) {
			set_err(err, errlen, std::string(path) + ": is a directory, not a sentencepiece model");
			return nullptr;
		}
		m = new lp_spm();
		std::string bytes;
		{
			FILE *g = fopen(path, "rb");
			char chunk[65536];
			size_t k;
			while (g && (k = fread(chunk, 1, sizeof chunk, g)) > 0)
				bytes.append(chunk, k);
			if (g)
				fclose(g);
		}
		auto st = m->sp.LoadFromSerializedProto(bytes);
		if (!st.ok()) {
			std::string why = st.error_message();
			if (why.find("ParseFromArray") != std::string::npos)
				why = "cannot parse it as a ModelProto";
			set_err(err, errlen, std::string(path) + ": not a sentencepiece model (" + why + ")");
			delete m;
			return nullptr;
		}
		m->size = m->sp.GetPieceSize();
		if (m->size <= 0) {
			set_err(err, errlen, std::string(path) + ": not a sentencepiece model: no pieces");
			delete m;
			return nullptr;
		}
		if (!getenv("LP_SPM_PLAIN"))   /* the library's own byte fallback (tests) */
			load_fast(m, bytes);
		return m;
	} catch (const std::exception &e) {
		set_err(err, errlen, std::string(path) + ": cannot load: " + e.what());
		delete m;
		return nullptr;
	}
}

extern "C" void lp_spm_free(lp_spm *m)
{
	if (m)
		delete m->fast;
	delete m;
}

extern "C" int lp_spm_size(const lp_spm *m) { return m->size; }
extern "C" int lp_spm_bos_id(const lp_spm *m) { return m->sp.bos_id(); }
extern "C" int lp_spm_eos_id(const lp_spm *m) { return m->sp.eos_id(); }
extern "C" int lp_spm_unk_id(const lp_spm *m) { return m->sp.unk_id(); }
extern "C" int lp_spm_pad_id(const lp_spm *m) { return m->sp.pad_id(); }

extern "C" const char *lp_spm_id_to_piece(const lp_spm *m, int id)
{
	if (id < 0 || id >= m->size)
		return nullptr;
	return m->sp.IdToPiece(id).c_str();
}

// Encode(text, std::vector<int> *) of the library builds and frees a
// SentencePieceText message, one allocation per piece, on every call; the
// library's documented alternative below fills a message that each thread
// keeps, which Encode clears and whose pieces protobuf reuses. Same ids.
extern "C" int lp_spm_encode(const lp_spm *m, const char *text, size_t len,
		int32_t **ids, size_t *n, size_t *cap, char *err, size_t errlen)
{
	try {
		static thread_local sentencepiece::ImmutableSentencePieceText spt;
		const auto &sp = m->fast ? *m->fast : m->sp;
		auto st = sp.Encode(absl::string_view(text, len), spt.mutable_proto());
		if (!st.ok()) {
			set_err(err, errlen, "sentencepiece: " + st.ToString());
			return -1;
		}
		size_t got = spt.pieces_size(), need = *n;
		int unk = m->sp.unk_id();
		for (size_t i = 0; i < got; i++) {
			auto piece = spt.pieces(static_cast<int>(i));
			need += m->fast && (int)piece.id() == unk ? piece.piece().size() : 1;
		}
		if (need > *cap) {
			size_t c = *cap ? *cap : 64;
			while (c < need)
				c *= 2;
			void *p = realloc(*ids, c * sizeof **ids);
			if (!p) {
				set_err(err, errlen, "out of memory");
				return -1;
			}
			*ids = static_cast<int32_t *>(p);
			*cap = c;
		}
		size_t k = *n;
		for (size_t i = 0; i < got; i++) {
			auto piece = spt.pieces(static_cast<int>(i));
			if (m->fast && (int)piece.id() == unk)
				for (unsigned char b : piece.piece())
					(*ids)[k++] = m->byte_id[b];
			else
				(*ids)[k++] = static_cast<int32_t>(piece.id());
		}
		*n = need;
		return 0;
	} catch (const std::exception &e) {
		set_err(err, errlen, std::string("sentencepiece: ") + e.what());
		return -1;
	}
}

extern "C" char *lp_spm_decode(const lp_spm *m, const int32_t *ids, size_t n, size_t *len,
		char *err, size_t errlen)
{
	try {
		std::vector<int> in(ids, ids + n);
		for (size_t i = 0; i < n; i++)
			if (in[i] < 0 || in[i] >= m->size) {
				std::string what = "token id " + std::to_string(in[i]) +
					" out of range (vocabulary " + std::to_string(m->size) + ")";
				set_err(err, errlen, what);
				return nullptr;
			}
		std::string text;
		auto st = m->sp.Decode(in, &text);
		if (!st.ok()) {
			set_err(err, errlen, "sentencepiece: " + st.ToString());
			return nullptr;
		}
		char *s = static_cast<char *>(malloc(text.size() + 1));
		if (!s) {
			set_err(err, errlen, "out of memory");
			return nullptr;
		}
		memcpy(s, text.data(), text.size());
		s[text.size()] = 0;
		if (len)
			*len = text.size();
		return s;
	} catch (const std::exception &e) {
		set_err(err, errlen, std::string("sentencepiece: ") + e.what());
		return nullptr;
	}
}

static char *join(const char *dir, const char *file)
{
	size_t a = strlen(dir), b = strlen(file);
	char *s = static_cast<char *>(malloc(a + b + 2));
	if (!s)
		return nullptr;
	memcpy(s, dir, a);
	size_t k = a;
	if (a && dir[a - 1] != '/')
		s[k++] = '/';
	memcpy(s + k, file, b + 1);
	return s;
}

extern "C" char *lp_spm_default_path(const char *model_file, const char *model_dir)
{
	if (model_file && *model_file)
		return strdup(model_file);
	if (model_dir && *model_dir)
		return join(model_dir, "tokenizer.model");
	const char *env = getenv("LLAMAPIPE_MODEL");
	if (env && *env)
		return join(env, "tokenizer.model");
	return nullptr;
}
