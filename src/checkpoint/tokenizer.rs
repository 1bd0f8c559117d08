//! Text ⇄ token ids for the model being trained, built either from a GGUF file's metadata or from a
//! Hugging Face folder (`tokenizer.json` + `tokenizer_config.json`).
//!
//! Guarantees:
//! - GGUF byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is rebuilt as a `tokenizers::Tokenizer`
//!   whose ids equal the upstream tokenizer's: vocabulary in file order, the file's merges, the
//!   pre-tokenizer that llama.cpp picks for `tokenizer.ggml.pre`, control (type 3) and user-defined
//!   (type 4) tokens matched whole in text (so `<|im_start|>` is one id).
//! - An unknown `tokenizer.ggml.pre` falls back to the GPT-2 split with a warning on stderr; a
//!   SentencePiece (`"llama"`) or other tokenizer model is an `Err` for now.
//! - `encode(text, true)` prepends BOS exactly when the model asks for it (`add_bos`), never twice;
//!   no other post-processing (EOS, templates) is applied, so callers control sequence ends.
//! - Every error names the file it came from. Nothing here touches the network.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value as Json;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::checkpoint::gguf::{GgufFile, MetaValue};

/// A loaded tokenizer plus the special-token facts generation and chat formatting need.
pub struct TextTokenizer {
    pub inner: Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// Whether `encode(.., add_special = true)` prepends `bos_id`.
    pub add_bos: bool,
    /// Ids that end a generated turn: EOS first, then end-of-turn tokens the vocabulary has.
    pub stop_ids: Vec<u32>,
    /// Empty when the model has no such token.
    pub bos_token: String,
    pub eos_token: String,
    pub chat_template: Option<String>,
}

/// Token texts that end a turn in common chat formats (llama.cpp's end-of-generation list).
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "<|return|>",
    "<|end_of_turn|>",
];

impl TextTokenizer {
    /// Rebuilds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        Self::from_gguf_metadata(&g.metadata, &g.path)
    }

    /// As [`Self::from_gguf`], from the metadata alone; `path` only names the file in errors.
    pub fn from_gguf_metadata(meta: &BTreeMap<String, MetaValue>, path: &Path) -> Result<Self> {
        gguf_build(meta).map_err(|e| anyhow!("GGUF file {}: tokenizer: {e:#}", path.display()))
    }

    /// Loads `dir/tokenizer.json` with the special tokens, BOS policy and chat template from
    /// `tokenizer_config.json` (and `chat_template.jinja`, `special_tokens_map.json`,
    /// `generation_config.json` when present).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        hf_build(dir)
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) map to their ids;
    /// `add_special` prepends BOS when the model wants one.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| anyhow!("tokenizer: encode failed: {e}"))?;
        let body = enc.get_ids();
        match self.bos_id.filter(|_| add_special && self.add_bos) {
            Some(bos) => Ok(std::iter::once(bos).chain(body.iter().copied()).collect()),
            None => Ok(body.to_vec()),
        }
    }

    /// Text of `ids`; `skip_special` drops control tokens such as `<|im_end|>`. Bytes that do not
    /// form valid UTF-8 (a token sequence cut mid-character) become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow!("tokenizer: decode failed: {e}"))
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The vocabulary entry for `id` as stored (byte-level spelling, e.g. `"Ġthe"`).
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The text one token stands for (e.g. `" the"`), for display; partial characters become U+FFFD.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.token_str(id)?;
        self.inner.decode(&[id], false).ok()
    }

    /// The id of a token given its vocabulary text (`"<|im_end|>"`, `"Ġthe"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF
// ---------------------------------------------------------------------------------------------

/// llama.cpp's `llama_token_type` values found in `tokenizer.ggml.token_type`.
const TOKEN_TYPE_NORMAL: u64 = 1;
const TOKEN_TYPE_CONTROL: u64 = 3;
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

fn gguf_build(meta: &BTreeMap<String, MetaValue>) -> Result<TextTokenizer> {
    match meta_str(meta, "tokenizer.ggml.model") {
        Some("gpt2") => {}
        Some("llama") => {
            bail!("unsupported tokenizer model \"llama\" (SentencePiece); only \"gpt2\" (byte-level BPE) is supported")
        }
        Some(other) => bail!("unsupported tokenizer model {other:?}; only \"gpt2\" (byte-level BPE) is supported"),
        None => bail!("tokenizer.ggml.model is missing"),
    }
    let tokens = string_array(meta, "tokenizer.ggml.tokens")?;
    let types = token_types(meta, tokens.len())?;
    let merges = merges(meta)?;
    let pre = pre_spec_for(meta_str(meta, "tokenizer.ggml.pre"));

    let mut inner = Tokenizer::new(bpe_model(&tokens, &types, merges, pre.ignore_merges)?);
    inner.with_pre_tokenizer(Some(pre_tokenizer(&pre.split)?));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    add_whole_tokens(&mut inner, &tokens, &types)?;

    let special = |key: &str| special_id(meta, key, tokens.len());
    let (bos_id, eos_id, pad_id) = (special("bos")?, special("eos")?, special("padding")?);
    let extra_stops = [special("eot")?, special("eom")?];
    let add_bos = meta_bool(meta, "tokenizer.ggml.add_bos_token").unwrap_or(pre.add_bos) && bos_id.is_some();
    let name = |id: Option<u32>| id.map(|i| tokens[i as usize].clone()).unwrap_or_default();
    Ok(TextTokenizer {
        stop_ids: stop_ids(&inner, eos_id, extra_stops.into_iter().flatten()),
        bos_token: name(bos_id),
        eos_token: name(eos_id),
        chat_template: meta_str(meta, "tokenizer.chat_template").map(str::to_string),
        inner,
        bos_id,
        eos_id,
        pad_id,
        add_bos,
    })
}

fn meta_str<'a>(meta: &'a BTreeMap<String, MetaValue>, key: &str) -> Option<&'a str> {
    meta.get(key)?.as_str()
}

fn meta_bool(meta: &BTreeMap<String, MetaValue>, key: &str) -> Option<bool> {
    match meta.get(key)? {
        MetaValue::Bool(b) => Some(*b),
        other => other.as_u64().map(|v| v != 0),
    }
}

fn string_array(meta: &BTreeMap<String, MetaValue>, key: &str) -> Result<Vec<String>> {
    let items = meta
        .get(key)
        .ok_or_else(|| anyhow!("{key} is missing"))?
        .as_array()
        .ok_or_else(|| anyhow!("{key} is not an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{key}[{i}] is not a string"))
        })
        .collect()
}

/// Per-token types; all "normal" when the file has none (old converters).
fn token_types(meta: &BTreeMap<String, MetaValue>, n_tokens: usize) -> Result<Vec<u64>> {
    let key = "tokenizer.ggml.token_type";
    let Some(value) = meta.get(key) else {
        return Ok(vec![TOKEN_TYPE_NORMAL; n_tokens]);
    };
    let items = value.as_array().ok_or_else(|| anyhow!("{key} is not an array"))?;
    if items.len() != n_tokens {
        bail!(
            "{key} has {} entries but tokenizer.ggml.tokens has {n_tokens}",
            items.len()
        );
    }
    Ok(items.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
}

fn merges(meta: &BTreeMap<String, MetaValue>) -> Result<Vec<(String, String)>> {
    let key = "tokenizer.ggml.merges";
    string_array(meta, key)?
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow!("{key}[{i}] = {m:?} is not two tokens separated by a space"))
        })
        .collect()
}

/// `tokenizer.ggml.<name>_token_id`, checked against the vocabulary size.
fn special_id(meta: &BTreeMap<String, MetaValue>, name: &str, n_tokens: usize) -> Result<Option<u32>> {
    let key = format!("tokenizer.ggml.{name}_token_id");
    let Some(value) = meta.get(&key) else { return Ok(None) };
    let id = value
        .as_u64()
        .ok_or_else(|| anyhow!("{key} is not an unsigned integer"))?;
    if id >= n_tokens as u64 {
        bail!("{key} = {id} is out of range (vocabulary has {n_tokens} tokens)");
    }
    Ok(Some(id as u32))
}

/// The BPE model: every token at its file index. Normal tokens written outside the byte-level
/// alphabet are respelled byte by byte (as transformers does) so BPE can still produce them;
/// control and user-defined tokens keep their text, because they are matched whole in raw text.
fn bpe_model(tokens: &[String], types: &[u64], merges: Vec<(String, String)>, ignore_merges: bool) -> Result<BPE> {
    let alphabet = ByteLevel::alphabet();
    let table = byte_to_char();
    let mut vocab = Vocab::with_capacity(tokens.len());
    let mut duplicates = 0usize;
    for (id, (token, &ty)) in tokens.iter().zip(types).enumerate() {
        let whole = matches!(ty, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED);
        let key = if whole || token.chars().all(|c| alphabet.contains(&c)) {
            token.clone()
        } else {
            token.bytes().map(|b| table[b as usize]).collect()
        };
        duplicates += usize::from(vocab.insert(key, id as u32).is_some());
    }
    if duplicates > 0 {
        eprintln!("warning: tokenizer: {duplicates} duplicate token texts; the later id wins when encoding");
    }
    BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .byte_fallback(false)
        .build()
        .map_err(|e| anyhow!("building the BPE model from tokenizer.ggml.tokens/merges: {e}"))
}

/// GPT-2's byte → printable char table (`bytes_to_unicode`).
fn byte_to_char() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let code = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        table[b as usize] = char::from_u32(code).expect("GPT-2 byte table stays in the BMP");
    }
    table
}

/// Registers control tokens as special and user-defined tokens as plain added tokens, so both
/// are matched whole in text; only control tokens are dropped by `decode(.., skip_special)`.
fn add_whole_tokens(inner: &mut Tokenizer, tokens: &[String], types: &[u64]) -> Result<()> {
    let pick = |want: u64| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|(t, ty)| **ty == want && !t.is_empty())
            .map(|(t, _)| AddedToken::from(t.clone(), want == TOKEN_TYPE_CONTROL).normalized(false))
            .collect()
    };
    inner
        .add_special_tokens(pick(TOKEN_TYPE_CONTROL))
        .map_err(|e| anyhow!("adding control tokens: {e}"))?;
    inner
        .add_tokens(pick(TOKEN_TYPE_USER_DEFINED))
        .map_err(|e| anyhow!("adding user-defined tokens: {e}"))?;
    Ok(())
}

fn stop_ids(inner: &Tokenizer, eos: Option<u32>, extra: impl Iterator<Item = u32>) -> Vec<u32> {
    let named = END_OF_TURN_TOKENS.iter().filter_map(|t| inner.token_to_id(t));
    let mut ids: Vec<u32> = Vec::new();
    for id in eos.into_iter().chain(extra).chain(named) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers, one family per llama.cpp `tokenizer.ggml.pre` value (src/llama-vocab.cpp).
// ---------------------------------------------------------------------------------------------

/// How text is cut into words before BPE.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PreSplit {
    /// GPT-2's regex inside `ByteLevel` (gpt2, mpt, olmo, phi-2…).
    Gpt2,
    /// Every digit alone, then GPT-2's regex: upstream StarCoder/SmolLM `tokenizer.json`s.
    DigitsThenGpt2,
    /// Each regex in turn splits the pieces further (matches and gaps both kept), then bytes.
    Regexes(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
struct PreSpec {
    split: PreSplit,
    /// Whole words found in the vocabulary skip BPE merges (Llama-3, Tekken).
    ignore_merges: bool,
    /// llama.cpp's default when `tokenizer.ggml.add_bos_token` is absent.
    add_bos: bool,
}

const GPT2_RE: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3_RE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_RE: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_RE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_RE: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const GPT4O_RE: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const SEED_CODER_RE: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
const BAILING_RE: &str =
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
const DEEPSEEK3_WORDS_RE: &str = concat!(
    r"[!-/:-@\[-`{-~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+",
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const BLOOM_RE: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

const LLAMA3: &[&str] = &[LLAMA3_RE];
const QWEN2: &[&str] = &[QWEN2_RE];
const QWEN35: &[&str] = &[QWEN35_RE];
const TEKKEN: &[&str] = &[TEKKEN_RE];
const GPT4O: &[&str] = &[GPT4O_RE];
const SEED_CODER: &[&str] = &[SEED_CODER_RE];
const BAILING: &[&str] = &[BAILING_RE];
const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2_RE, r"\p{N}+", r"[0-9][0-9][0-9]"];
const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2_RE, r"[0-9][0-9][0-9]"];
const BLOOM: &[&str] = &[BLOOM_RE];
const VIKING: &[&str] = &[BLOOM_RE, r"\p{N}"];
const DEEPSEEK_CODER: &[&str] = &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"];
const DEEPSEEK3: &[&str] = &[r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3_WORDS_RE];

/// Every `tokenizer.ggml.pre` value we know, for tests and diagnostics.
pub const KNOWN_PRE_TYPES: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "glm4",
    "chatglm-bpe",
    "tekken",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "stablelm2",
    "hunyuan",
    "grok-2",
    "qwen35",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
    "starcoder",
    "refact",
    "command-r",
    "smollm",
    "codeshell",
    "exaone",
    "minerva-7b",
    "gpt2",
    "gpt-2",
    "phi-2",
    "mpt",
    "olmo",
    "jais",
    "trillion",
    "granite-docling",
    "exaone4",
    "gigachat",
    "jina-es",
    "jina-de",
    "jina-v1-en",
    "jina-v2-es",
    "jina-v2-de",
    "jina-v2-code",
    "roberta-bpe",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "default",
    "falcon",
    "poro-chat",
    "bloom",
    "gpt3-finnish",
    "viking",
    "deepseek-coder",
    "deepseek-v3",
    "hunyuan-dense",
    "seed-coder",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
];

fn pre_spec(pre: &str) -> Option<PreSpec> {
    let spec = |split, ignore_merges, add_bos| {
        Some(PreSpec {
            split,
            ignore_merges,
            add_bos,
        })
    };
    let regexes = |r| spec(PreSplit::Regexes(r), false, false);
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" => spec(PreSplit::Regexes(LLAMA3), true, true),
        "tekken" => spec(PreSplit::Regexes(TEKKEN), true, true),
        "dbrx" | "smaug-bpe" | "glm4" | "chatglm-bpe" => regexes(LLAMA3),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan" | "grok-2" => {
            regexes(QWEN2)
        }
        "qwen35" => regexes(QWEN35),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => regexes(GPT4O),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            spec(PreSplit::DigitsThenGpt2, false, false)
        }
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" | "exaone4"
        | "gigachat" | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code"
        | "roberta-bpe" | "a.x-4.0" | "mellum" | "modern-bert" => spec(PreSplit::Gpt2, false, false),
        "default" => regexes(DEFAULT),
        "falcon" => regexes(FALCON),
        "poro-chat" | "bloom" | "gpt3-finnish" => regexes(BLOOM),
        "viking" => regexes(VIKING),
        "deepseek-coder" => regexes(DEEPSEEK_CODER),
        "deepseek-v3" | "hunyuan-dense" => regexes(DEEPSEEK3),
        "seed-coder" => regexes(SEED_CODER),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => regexes(BAILING),
        _ => None,
    }
}

/// The spec for a file's `tokenizer.ggml.pre`; unknown or missing values get GPT-2's split and a
/// warning, because a slightly different split still beats refusing to load the model.
fn pre_spec_for(pre: Option<&str>) -> PreSpec {
    if let Some(spec) = pre.and_then(pre_spec) {
        return spec;
    }
    eprintln!(
        "warning: tokenizer: unknown pre-tokenizer {:?} (tokenizer.ggml.pre); using GPT-2's, ids may differ from the original",
        pre.unwrap_or("<missing>")
    );
    PreSpec {
        split: PreSplit::Gpt2,
        ignore_merges: false,
        add_bos: false,
    }
}

fn pre_tokenizer(split: &PreSplit) -> Result<PreTokenizerWrapper> {
    // add_prefix_space stays off: llama.cpp never prepends a space for BPE vocabularies.
    let byte_level = |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    Ok(match split {
        PreSplit::Gpt2 => byte_level(true),
        PreSplit::DigitsThenGpt2 => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![Digits::new(true).into(), byte_level(true)]))
        }
        PreSplit::Regexes(patterns) => {
            let mut steps = patterns.iter().map(|p| regex_split(p)).collect::<Result<Vec<_>>>()?;
            steps.push(byte_level(false));
            PreTokenizerWrapper::Sequence(Sequence::new(steps))
        }
    })
}

fn regex_split(pattern: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(pattern.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| anyhow!("pre-tokenizer regex {pattern:?} does not compile: {e}"))?;
    Ok(split.into())
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folder
// ---------------------------------------------------------------------------------------------

fn hf_build(dir: &Path) -> Result<TextTokenizer> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        bail!(
            "{}: no such file (a Hugging Face model folder needs tokenizer.json)",
            tok_path.display()
        );
    }
    let inner = Tokenizer::from_file(&tok_path).map_err(|e| anyhow!("{}: {e}", tok_path.display()))?;
    let config = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let special_map = read_json_opt(&dir.join("special_tokens_map.json"))?.unwrap_or(Json::Null);
    let token_named = |key: &str| special_token_text(&config[key]).or_else(|| special_token_text(&special_map[key]));

    let bos_token = token_named("bos_token").unwrap_or_default();
    let eos_token = token_named("eos_token").unwrap_or_default();
    let id_of = |t: &str| if t.is_empty() { None } else { inner.token_to_id(t) };
    let (bos_id, eos_id) = (id_of(&bos_token), id_of(&eos_token));
    let pad_id = token_named("pad_token").and_then(|t| id_of(&t));
    let add_bos = match config["add_bos_token"].as_bool() {
        Some(b) => b && bos_id.is_some(),
        None => post_processor_adds(&inner, bos_id),
    };
    let generation_eos = generation_eos_ids(dir)?;
    Ok(TextTokenizer {
        stop_ids: stop_ids(&inner, eos_id, generation_eos.into_iter()),
        chat_template: hf_chat_template(dir, &config)?,
        inner,
        bos_id,
        eos_id,
        pad_id,
        add_bos,
        bos_token,
        eos_token,
    })
}

/// `None` when the file does not exist; parse errors name the file.
fn read_json_opt(path: &Path) -> Result<Option<Json>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let json = serde_json::from_str(&text).map_err(|e| anyhow!("{}: invalid JSON: {e}", path.display()))?;
    Ok(Some(json))
}

/// A special token in a config is either its text or a serialized `AddedToken` (`{"content": …}`).
fn special_token_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Folders without `add_bos_token` (Llama 3) add BOS through tokenizer.json's post-processor.
fn post_processor_adds(inner: &Tokenizer, bos: Option<u32>) -> bool {
    let Some(bos) = bos else { return false };
    inner
        .encode_fast("", true)
        .map(|e| e.get_ids().first() == Some(&bos))
        .unwrap_or(false)
}

/// Extra end-of-generation ids from `generation_config.json` (`eos_token_id`: int or list).
fn generation_eos_ids(dir: &Path) -> Result<Vec<u32>> {
    let Some(cfg) = read_json_opt(&dir.join("generation_config.json"))? else {
        return Ok(vec![]);
    };
    let ids = match &cfg["eos_token_id"] {
        Json::Array(a) => a.iter().filter_map(Json::as_u64).collect(),
        v => v.as_u64().into_iter().collect::<Vec<_>>(),
    };
    Ok(ids.into_iter().filter_map(|i| u32::try_from(i).ok()).collect())
}

/// transformers' precedence: `chat_template.jinja`, then `tokenizer_config.json`'s
/// `chat_template` (a string, or a list of `{name, template}` where "default" wins), then
/// `chat_template.json`.
fn hf_chat_template(dir: &Path, config: &Json) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let text = std::fs::read_to_string(&jinja).with_context(|| format!("{}: cannot read", jinja.display()))?;
        return Ok(Some(text));
    }
    let config_path = dir.join("tokenizer_config.json");
    if let Some(t) = template_value(&config["chat_template"]).map_err(|e| anyhow!("{}: {e}", config_path.display()))? {
        return Ok(Some(t));
    }
    let json_path = dir.join("chat_template.json");
    match read_json_opt(&json_path)? {
        Some(j) => template_value(&j["chat_template"]).map_err(|e| anyhow!("{}: {e}", json_path.display())),
        None => Ok(None),
    }
}

fn template_value(v: &Json) -> Result<Option<String>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Array(list) => {
            let named = |n: &str| list.iter().find(|t| t["name"].as_str() == Some(n));
            let pick = named("default").or_else(|| list.first());
            match pick.map(|t| &t["template"]) {
                Some(Json::String(s)) => Ok(Some(s.clone())),
                None => Ok(None),
                Some(_) => bail!("chat_template list entry has no string \"template\""),
            }
        }
        _ => bail!("chat_template is neither a string nor a list of {{name, template}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alphabet_tokens() -> Vec<String> {
        byte_to_char().iter().map(|c| c.to_string()).collect()
    }

    /// A tiny byte-level vocabulary: 256 byte tokens, "Ġt", "Ġth", "Ġthe", "he", control and
    /// user-defined tokens.
    fn tiny_meta(pre: Option<&str>) -> BTreeMap<String, MetaValue> {
        let mut tokens = alphabet_tokens();
        let mut types = vec![1i32; tokens.len()];
        for (t, ty) in [
            ("Ġt", 1),
            ("Ġth", 1),
            ("Ġthe", 1),
            ("he", 1),
            ("<|im_start|>", 3),
            ("<|im_end|>", 3),
            ("<think>", 4),
        ] {
            tokens.push(t.to_string());
            types.push(ty);
        }
        let merges = ["Ġ t", "Ġt h", "h e", "Ġth e"];
        let strs = |v: Vec<String>| MetaValue::Array(v.into_iter().map(MetaValue::Str).collect());
        let mut m = BTreeMap::new();
        m.insert("tokenizer.ggml.model".into(), MetaValue::Str("gpt2".into()));
        if let Some(p) = pre {
            m.insert("tokenizer.ggml.pre".into(), MetaValue::Str(p.into()));
        }
        let n = tokens.len() as u32;
        m.insert("tokenizer.ggml.tokens".into(), strs(tokens));
        m.insert(
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        );
        m.insert(
            "tokenizer.ggml.merges".into(),
            strs(merges.iter().map(|s| s.to_string()).collect()),
        );
        m.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(n - 3));
        m.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(n - 2));
        m
    }

    fn build(meta: &BTreeMap<String, MetaValue>) -> Result<TextTokenizer> {
        TextTokenizer::from_gguf_metadata(meta, Path::new("/models/tiny.gguf"))
    }

    #[test]
    fn every_known_pre_type_compiles() {
        for pre in KNOWN_PRE_TYPES {
            let spec = pre_spec(pre).unwrap_or_else(|| panic!("{pre} has no spec"));
            pre_tokenizer(&spec.split).unwrap_or_else(|e| panic!("{pre}: {e}"));
            let t = build(&tiny_meta(Some(pre))).unwrap();
            assert_eq!(
                t.decode(&t.encode("hi the 123 <think> x", false).unwrap(), false)
                    .unwrap(),
                "hi the 123 <think> x"
            );
        }
    }

    #[test]
    fn merges_special_and_user_tokens() {
        let t = build(&tiny_meta(Some("gpt2"))).unwrap();
        let ids = t.encode("<|im_start|>a the<think>", false).unwrap();
        let n = 256;
        assert_eq!(ids, vec![n + 4, byte_index('a'), n + 2, n + 6]);
        assert_eq!(t.decode(&ids, true).unwrap(), "a the<think>");
        assert_eq!(t.token_str(n + 2).as_deref(), Some("Ġthe"));
        assert_eq!(t.token_text(n + 2).as_deref(), Some(" the"));
        assert_eq!(t.stop_ids, vec![n + 5]);
        assert_eq!(
            (t.bos_token.as_str(), t.eos_token.as_str()),
            ("<|im_start|>", "<|im_end|>")
        );
        assert_eq!(t.vocab_size(), 263);
    }

    fn byte_index(c: char) -> u32 {
        byte_to_char().iter().position(|&x| x == c).unwrap() as u32
    }

    #[test]
    fn bos_only_when_asked() {
        let mut m = tiny_meta(Some("gpt2"));
        let t = build(&m).unwrap();
        assert!(!t.add_bos);
        assert_eq!(t.encode("a", true).unwrap(), vec![byte_index('a')]);
        m.insert("tokenizer.ggml.add_bos_token".into(), MetaValue::Bool(true));
        let t = build(&m).unwrap();
        assert_eq!(t.encode("a", true).unwrap(), vec![260, byte_index('a')]);
        assert_eq!(t.encode("a", false).unwrap(), vec![byte_index('a')]);
        // llama-bpe defaults to BOS like llama.cpp does.
        m.remove("tokenizer.ggml.add_bos_token");
        m.insert("tokenizer.ggml.pre".into(), MetaValue::Str("llama-bpe".into()));
        assert!(build(&m).unwrap().add_bos);
    }

    #[test]
    fn unknown_pre_falls_back() {
        let t = build(&tiny_meta(Some("no-such-pre"))).unwrap();
        assert_eq!(t.decode(&t.encode("x the", false).unwrap(), false).unwrap(), "x the");
        build(&tiny_meta(None)).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        type Edit = Box<dyn Fn(&mut BTreeMap<String, MetaValue>)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "tokens",
                Box::new(|m| drop(m.remove("tokenizer.ggml.tokens"))),
                "tokenizer.ggml.tokens is missing",
            ),
            (
                "merges",
                Box::new(|m| drop(m.remove("tokenizer.ggml.merges"))),
                "tokenizer.ggml.merges is missing",
            ),
            (
                "bos",
                Box::new(|m| drop(m.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(99999)))),
                "out of range",
            ),
            (
                "llama",
                Box::new(|m| drop(m.insert("tokenizer.ggml.model".into(), MetaValue::Str("llama".into())))),
                "unsupported tokenizer model",
            ),
            (
                "types",
                Box::new(|m| drop(m.insert("tokenizer.ggml.token_type".into(), MetaValue::Array(vec![])))),
                "token_type has 0 entries",
            ),
            (
                "merge text",
                Box::new(|m| {
                    drop(m.insert(
                        "tokenizer.ggml.merges".into(),
                        MetaValue::Array(vec![MetaValue::Str("nospace".into())]),
                    ))
                }),
                "not two tokens",
            ),
            (
                "merge oov",
                Box::new(|m| {
                    drop(m.insert(
                        "tokenizer.ggml.merges".into(),
                        MetaValue::Array(vec![MetaValue::Str("zz qq".into())]),
                    ))
                }),
                "BPE model",
            ),
        ];
        for (what, edit, needle) in cases {
            let mut m = tiny_meta(Some("gpt2"));
            edit(&mut m);
            let err = format!(
                "{:#}",
                build(&m).err().unwrap_or_else(|| panic!("{what}: expected an error"))
            );
            assert!(
                err.contains("/models/tiny.gguf") && err.contains(needle),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn respells_normal_tokens_outside_the_byte_alphabet() {
        let mut m = tiny_meta(Some("gpt2"));
        let MetaValue::Array(tokens) = m.get_mut("tokenizer.ggml.tokens").unwrap() else {
            unreachable!()
        };
        tokens.push(MetaValue::Str(" é".into()));
        let MetaValue::Array(types) = m.get_mut("tokenizer.ggml.token_type").unwrap() else {
            unreachable!()
        };
        types.push(MetaValue::I32(1));
        let t = build(&m).unwrap();
        assert_eq!(t.token_str(263).as_deref(), Some("ĠÃ©"));
        assert_eq!(t.token_text(263).as_deref(), Some(" é"));
    }

    #[test]
    fn chat_template_forms() {
        assert_eq!(template_value(&serde_json::json!("x")).unwrap().as_deref(), Some("x"));
        let list = serde_json::json!([{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]);
        assert_eq!(template_value(&list).unwrap().as_deref(), Some("d"));
        assert_eq!(
            template_value(&serde_json::json!([{"name": "rag", "template": "r"}]))
                .unwrap()
                .as_deref(),
            Some("r")
        );
        assert!(template_value(&serde_json::json!(3)).is_err());
        assert_eq!(template_value(&Json::Null).unwrap(), None);
    }
}
