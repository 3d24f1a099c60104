// spm.cc: the C interface of spm.h over sentencepiece::SentencePieceProcessor.
//
// Nothing here throws into C: every entry point catches, and reports
// through err. Encode and Decode are const members of the processor, so
// concurrent calls on one loaded model are safe.
#include "text/spm.h"

#include <sentencepiece_processor.h>

extern "C" {
#include "formats/spm_model.h"
#include "text/bpe.h"
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
	// The model as parsed here, and the built-in encoder over it (text/bpe.h)
	// when it covers the model; bpe is null otherwise, and Encode is the
	// library's.
	lp_spm_model parsed;
	bool have_parsed;
	lp_bpe *bpe;
	char encoder[160];
};

// The built-in encoder for m, unless LP_SPM_LIBRARY is set or it declines
// the model; m->encoder says which encodes, and why.
static void load_bpe(lp_spm *m, const std::string &bytes)
{
	char why[128] = "";
	if (getenv("LP_SPM_LIBRARY") && *getenv("LP_SPM_LIBRARY")) {
		snprintf(m->encoder, sizeof m->encoder, "the sentencepiece library (LP_SPM_LIBRARY is set)");
		return;
	}
	if (lp_spm_model_parse(bytes.data(), bytes.size(), &m->parsed, why, sizeof why) == 0) {
		m->have_parsed = true;
		m->bpe = lp_bpe_new(&m->parsed, why, sizeof why);
	}
	if (m->bpe)
		snprintf(m->encoder, sizeof m->encoder, "built-in BPE");
	else
		snprintf(m->encoder, sizeof m->encoder, "the sentencepiece library (%s)", why);
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
		load_bpe(m, bytes);
		return m;
	} catch (const std::exception &e) {
		set_err(err, errlen, std::string(path) + ": cannot load: " + e.what());
		delete m;
		return nullptr;
	}
}

extern "C" void lp_spm_free(lp_spm *m)
{
	if (m) {
		lp_bpe_free(m->bpe);
		if (m->have_parsed)
			lp_spm_model_free(&m->parsed);
	}
	delete m;
}

extern "C" const char *lp_spm_encoder(const lp_spm *m) { return m->encoder; }

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
	if (m->bpe) {
		if (lp_bpe_encode(m->bpe, text, len, ids, n, cap) == 0)
			return 0;
		set_err(err, errlen, "out of memory encoding a text of " + std::to_string(len) + " bytes");
		return -1;
	}
	try {
		static thread_local sentencepiece::ImmutableSentencePieceText spt;
		auto st = m->sp.Encode(absl::string_view(text, len), spt.mutable_proto());
		if (!st.ok()) {
			set_err(err, errlen, "sentencepiece: " + st.ToString());
			return -1;
		}
		size_t got = spt.pieces_size(), need = *n + got;
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
		for (size_t i = 0; i < got; i++)
			(*ids)[*n + i] = static_cast<int32_t>(spt.pieces(static_cast<int>(i)).id());
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
