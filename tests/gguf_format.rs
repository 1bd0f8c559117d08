//! GGUF reader and dequantizer tests against fixtures made by gguf-py
//! (regenerate with `/root/.venvs/ref/bin/python scripts/make_gguf_fixtures.py`).
//!
//! Covers: metadata of every value type, tensor infos and shapes, dequantization of every
//! supported type against `gguf.quants.dequantize`, Q8_0 quantization against
//! `gguf.quants.quantize`, custom alignment, v2 files, and hostile files (truncations, lying
//! counts and lengths, bad dims/offsets/types), which must be `Err` naming the file, never panic.
//! With MEMTRAIN_MODEL pointing at SmolLM2-135M-Instruct.Q4_1.gguf, also the real model.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use memtrain::checkpoint::dequant;
use memtrain::checkpoint::gguf::{self, GgmlType, GgufFile, MetaValue};

const HOSTILE_NAME: &str = "hostile-case.gguf";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn open_fixture(name: &str) -> GgufFile {
    GgufFile::open(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("{e:#}"))
}

fn read_f32s(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

// ---------------------------------------------------------------- well-formed files

#[test]
fn header_and_metadata_of_every_value_type() {
    let f = open_fixture("all_types.gguf");
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.architecture(), Some("testarch"));
    assert_eq!(f.meta_str("test.string"), Some("héllo gguf ✓"));
    assert_eq!(f.meta("test.u8"), Some(&MetaValue::U8(200)));
    assert_eq!(f.meta("test.i8"), Some(&MetaValue::I8(-100)));
    assert_eq!(f.meta("test.u16"), Some(&MetaValue::U16(60000)));
    assert_eq!(f.meta("test.i16"), Some(&MetaValue::I16(-30000)));
    assert_eq!(f.meta("test.u32"), Some(&MetaValue::U32(4_000_000_000)));
    assert_eq!(f.meta("test.i32"), Some(&MetaValue::I32(-2_000_000_000)));
    assert_eq!(f.meta("test.u64"), Some(&MetaValue::U64((1 << 63) + 5)));
    assert_eq!(f.meta("test.i64"), Some(&MetaValue::I64(-(1 << 62))));
    assert_eq!(f.meta("test.f32"), Some(&MetaValue::F32(0.15625)));
    assert_eq!(f.meta("test.f64"), Some(&MetaValue::F64(1.0e-300)));
    assert_eq!(f.meta("test.bool_true"), Some(&MetaValue::Bool(true)));
    assert_eq!(f.meta("test.bool_false"), Some(&MetaValue::Bool(false)));

    // Accessors convert across integer widths but never from bools or negatives.
    assert_eq!(f.meta_u64("test.u32"), Some(4_000_000_000));
    assert_eq!(f.meta_u64("test.u8"), Some(200));
    assert_eq!(f.meta_u64("test.i32"), None);
    assert_eq!(f.meta_u64("test.bool_true"), None);
    assert_eq!(f.meta_f64("test.f32"), Some(0.15625));
    assert_eq!(f.meta_f64("test.i16"), Some(-30000.0));
    assert_eq!(f.meta_f64("test.string"), None);
    assert_eq!(f.meta_str("test.u8"), None);
    assert_eq!(f.meta("no.such.key"), None);

    let strs: Vec<&str> = f
        .meta("test.str_array")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(strs, ["a", "", "xyz", "ü"]);
    let ints: Vec<MetaValue> = f
        .meta("test.i32_array")
        .unwrap()
        .as_array()
        .unwrap()
        .to_vec();
    assert_eq!(
        ints,
        [
            MetaValue::I32(1),
            MetaValue::I32(-2),
            MetaValue::I32(i32::MAX),
            MetaValue::I32(i32::MIN)
        ]
    );
    assert_eq!(
        f.meta("test.f32_array"),
        Some(&MetaValue::Array(vec![
            MetaValue::F32(0.5),
            MetaValue::F32(-1.25)
        ]))
    );
    let nested = f.meta("test.nested_array").unwrap().as_array().unwrap();
    assert_eq!(nested.len(), 2);
    assert_eq!(nested[0].as_array().unwrap().len(), 2);
    assert_eq!(nested[1].as_array().unwrap()[0].as_u64(), Some(3));
}

const QUANT_TYPES: [(&str, GgmlType); 13] = [
    ("t_f32", GgmlType::F32),
    ("t_f16", GgmlType::F16),
    ("t_bf16", GgmlType::BF16),
    ("t_q8_0", GgmlType::Q8_0),
    ("t_q4_0", GgmlType::Q4_0),
    ("t_q4_1", GgmlType::Q4_1),
    ("t_q5_0", GgmlType::Q5_0),
    ("t_q5_1", GgmlType::Q5_1),
    ("t_q2_k", GgmlType::Q2_K),
    ("t_q3_k", GgmlType::Q3_K),
    ("t_q4_k", GgmlType::Q4_K),
    ("t_q5_k", GgmlType::Q5_K),
    ("t_q6_k", GgmlType::Q6_K),
];

#[test]
fn tensor_infos_and_shapes() {
    let f = open_fixture("all_types.gguf");
    assert_eq!(f.tensors.len(), QUANT_TYPES.len() + 2);
    for (name, ty) in QUANT_TYPES {
        let info = f
            .tensor_info(name)
            .unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(info.ggml_type, ty, "{name}");
        assert_eq!(info.dims, [512, 2], "{name}");
        assert_eq!(info.shape_row_major(), [2, 512], "{name}");
        assert_eq!(info.n_elements(), 1024);
        assert_eq!(info.offset % f.alignment, 0, "{name}");
        let expected_len = 1024 / ty.block_size().unwrap() * ty.type_size().unwrap();
        assert_eq!(info.byte_len(), Some(expected_len as u64), "{name}");
        assert_eq!(f.tensor_bytes(info).len(), expected_len, "{name}");
        assert_eq!(GgmlType::from_id(ty.id()), ty);
    }
    let (data, shape) = f.dequantize("t_3d").unwrap();
    assert_eq!(f.tensor_info("t_3d").unwrap().dims, [4, 3, 2]);
    assert_eq!(shape, [2, 3, 4]);
    assert_eq!(data, (0..24).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(
        f.dequantize("t_1d").unwrap(),
        (vec![1.5, -2.5, 3.25], vec![3])
    );
    assert!(f.tensor_info("nope").is_none());
    let err = f.dequantize("nope").unwrap_err().to_string();
    assert!(
        err.contains("all_types.gguf") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn dequantization_matches_gguf_py() {
    let f = open_fixture("all_types.gguf");
    for (name, ty) in QUANT_TYPES {
        let reference = read_f32s(&fixture_dir().join(format!("ref/{name}.f32")));
        let (ours, shape) = f.dequantize(name).unwrap();
        assert_eq!(shape, [2, 512]);
        assert_eq!(ours.len(), reference.len(), "{name}");
        // Same float operations in the same order as ggml/gguf-py, so every type is bit-exact
        // (the brief's bar was 1e-6 of the scale for quantized types; report that too on failure).
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max_diff = ours
            .iter()
            .zip(&reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let mismatches = ours
            .iter()
            .zip(&reference)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert!(scale > 0.0, "{name}: fixture should not be all zero");
        assert_eq!(
            mismatches, 0,
            "{name} ({ty:?}): max diff {max_diff} vs scale {scale}"
        );
        // The pure function gives the same as the file method.
        let direct =
            dequant::dequantize(ty, f.tensor_bytes(f.tensor_info(name).unwrap()), 1024).unwrap();
        assert_eq!(direct, ours);
    }
}

#[test]
fn custom_alignment_is_honoured() {
    let f = open_fixture("align64.gguf");
    assert_eq!(f.alignment, 64);
    assert_eq!(f.meta_u64("general.alignment"), Some(64));
    assert_eq!(f.data_start() % 64, 0);
    let b = f.tensor_info("b").unwrap();
    assert_eq!(
        b.offset, 64,
        "'a' is 12 bytes, so 'b' starts at the next 64-byte boundary"
    );
    assert_eq!(f.dequantize("a").unwrap(), (vec![1.0, 2.0, 3.0], vec![3]));
    let (data, shape) = f.dequantize("b").unwrap();
    assert_eq!(shape, [2, 32]);
    assert_eq!(data, (0..64).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn version_2_is_accepted() {
    let mut bytes = fixture_bytes("all_types.gguf");
    put_u32(&mut bytes, 4, 2);
    let f = GgufFile::from_bytes(bytes, Path::new("v2.gguf")).unwrap();
    assert_eq!(f.version, 2);
    assert_eq!(f.dequantize("t_q4_k").unwrap().0.len(), 1024);
}

#[test]
fn quantize_q8_0_matches_gguf_py_bit_for_bit() {
    let input = read_f32s(&fixture_dir().join("q8_0_input.f32"));
    let expected = fixture_bytes("q8_0_quant.bin");
    let ours = dequant::quantize_q8_0(&input);
    assert_eq!(ours.len(), expected.len());
    for (i, (a, b)) in ours.chunks(34).zip(expected.chunks(34)).enumerate() {
        assert_eq!(a, b, "Q8_0 block {i} differs");
    }
    // Round trip: every value comes back within half a quantization step.
    let back = dequant::dequantize(GgmlType::Q8_0, &ours, input.len()).unwrap();
    for (block_in, block_out) in input.chunks(32).zip(back.chunks(32)) {
        let amax = block_in.iter().fold(0f32, |m, v| m.max(v.abs()));
        let step = amax / 127.0;
        for (x, y) in block_in.iter().zip(block_out) {
            assert!(
                (x - y).abs() <= step * 0.5 + amax * 1e-3,
                "{x} -> {y} (step {step})"
            );
        }
    }
}

#[test]
fn dequantize_rejects_bad_arguments() {
    let err = dequant::dequantize(GgmlType::Q4_0, &[0; 17], 32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bytes"), "{err}");
    let err = dequant::dequantize(GgmlType::Q4_K, &[0; 144], 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple"), "{err}");
    let err = dequant::dequantize(GgmlType::Other(16), &[0; 66], 256)
        .unwrap_err()
        .to_string();
    assert!(err.contains("IQ2_XXS"), "{err}");
    let err = dequant::dequantize(GgmlType::Other(77), &[], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("77"), "{err}");
    assert_eq!(
        dequant::dequantize(GgmlType::F32, &[], 0).unwrap(),
        Vec::<f32>::new()
    );
}

#[test]
fn type_names_and_sizes() {
    assert_eq!(GgmlType::Q4_K.name(), "Q4_K");
    assert_eq!(GgmlType::from_id(30), GgmlType::BF16);
    assert_eq!(GgmlType::from_id(16).name(), "IQ2_XXS");
    assert!(GgmlType::from_id(77).name().contains("77"));
    assert_eq!(GgmlType::from_id(77).block_size(), None);
    assert_eq!(GgmlType::Q6_K.type_size(), Some(210));
    assert_eq!(GgmlType::Q5_K.block_size(), Some(256));
}

// ---------------------------------------------------------------- hostile files

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Position of a GGUF string (u64 length + bytes) holding `s`, unique in the file.
fn string_pos(bytes: &[u8], s: &str) -> usize {
    let mut pattern = (s.len() as u64).to_le_bytes().to_vec();
    pattern.extend_from_slice(s.as_bytes());
    let hits: Vec<usize> = bytes
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, w)| *w == pattern)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "string {s:?} should occur once");
    hits[0]
}

/// Field positions of tensor `name`'s info record: (n_dims, first dim, ggml type, offset).
fn tensor_fields(bytes: &[u8], name: &str, n_dims: usize) -> (usize, usize, usize, usize) {
    let at = string_pos(bytes, name) + 8 + name.len();
    let dims = at + 4;
    let ty = dims + 8 * n_dims;
    (at, dims, ty, ty + 4)
}

fn parse(bytes: Vec<u8>, label: &str) -> anyhow::Result<GgufFile> {
    catch_unwind(AssertUnwindSafe(|| {
        GgufFile::from_bytes(bytes, Path::new(HOSTILE_NAME))
    }))
    .unwrap_or_else(|_| panic!("parser panicked on case: {label}"))
}

/// The parse must fail with a message naming the file and containing one of `words`.
fn expect_err(bytes: Vec<u8>, label: &str, words: &[&str]) {
    let err = match parse(bytes, label) {
        Ok(_) => panic!("case {label}: expected an error, file opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(HOSTILE_NAME),
        "case {label}: message lacks file name: {err}"
    );
    let lower = err.to_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(w)),
        "case {label}: message lacks {words:?}: {err}"
    );
}

fn mutated(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = fixture_bytes("all_types.gguf");
    f(&mut bytes);
    bytes
}

#[test]
fn empty_and_truncated_headers() {
    expect_err(vec![], "empty", &["empty"]);
    let bytes = fixture_bytes("all_types.gguf");
    let first_tensor = string_pos(&bytes, "t_f32");
    let cuts = [
        ("mid-magic", 3),
        ("mid-version", 6),
        ("mid-counts", 20),
        ("first key", 30),
        ("mid-metadata", first_tensor / 2),
        ("mid-tensor-infos", first_tensor + 20),
        ("mid-data", bytes.len() - 2000),
    ];
    for (label, cut) in cuts {
        expect_err(
            bytes[..cut].to_vec(),
            label,
            &["truncated", "end of the file", "left in the file"],
        );
    }
}

#[test]
fn every_truncation_before_the_last_tensor_ends_is_an_error() {
    let bytes = fixture_bytes("all_types.gguf");
    let f = GgufFile::from_bytes(bytes.clone(), Path::new("all_types.gguf")).unwrap();
    let needed = f
        .tensors
        .iter()
        .map(|t| f.data_start() + t.offset + t.byte_len().unwrap())
        .max()
        .unwrap() as usize;
    for cut in 0..needed {
        let label = format!("cut at {cut}");
        expect_err(
            bytes[..cut].to_vec(),
            &label,
            &["truncated", "end of the file", "left in", "empty"],
        );
    }
    // Trailing padding after the last tensor is optional.
    parse(bytes[..needed].to_vec(), "exact end").unwrap();
}

#[test]
fn bad_magic_and_versions() {
    expect_err(mutated(|b| b[0] = b'X'), "magic", &["magic"]);
    expect_err(mutated(|b| put_u32(b, 4, 1)), "version 1", &["version 1"]);
    expect_err(
        mutated(|b| put_u32(b, 4, 99)),
        "version 99",
        &["version 99"],
    );
    expect_err(
        mutated(|b| put_u32(b, 4, 3u32.swap_bytes())),
        "big-endian",
        &["big-endian"],
    );
}

#[test]
fn lying_counts_and_lengths() {
    expect_err(
        mutated(|b| put_u64(b, 8, 1 << 60)),
        "tensor count 2^60",
        &["tensor count"],
    );
    expect_err(
        mutated(|b| put_u64(b, 16, 1 << 60)),
        "kv count 2^60",
        &["metadata count"],
    );
    expect_err(
        mutated(|b| put_u64(b, 8, u64::MAX)),
        "tensor count max",
        &["tensor count"],
    );
    // First key's length.
    expect_err(
        mutated(|b| put_u64(b, 24, 1 << 62)),
        "key length 2^62",
        &["string length"],
    );
    // A string value's length.
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "test.string") + 8 + 11 + 4;
            put_u64(b, at, 1 << 62)
        }),
        "string value length 2^62",
        &["string length"],
    );
    // Array count: key, then value type (u32 = 9), element type (u32), count (u64).
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "test.str_array") + 8 + 14 + 8;
            put_u64(b, at, 1 << 62)
        }),
        "array length 2^62",
        &["array length"],
    );
    // Inner array of the nested array.
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "test.nested_array") + 8 + 17 + 8 + 8 + 4;
            put_u64(b, at, 1 << 62)
        }),
        "nested array length 2^62",
        &["array length"],
    );
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "test.u8") + 8 + 7;
            put_u32(b, at, 42)
        }),
        "unknown value type",
        &["unknown metadata value type"],
    );
}

#[test]
fn duplicates_are_errors() {
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "test.u8") + 8;
            b[at..at + 7].copy_from_slice(b"test.i8");
        }),
        "duplicate key",
        &["duplicate metadata key"],
    );
    expect_err(
        mutated(|b| {
            let at = string_pos(b, "t_f16") + 8;
            b[at..at + 5].copy_from_slice(b"t_f32");
        }),
        "duplicate tensor",
        &["duplicate tensor name"],
    );
}

#[test]
fn bad_dims() {
    let n_dims_9 = mutated(|b| {
        let (n_dims, ..) = tensor_fields(b, "t_f32", 2);
        put_u32(b, n_dims, 9)
    });
    expect_err(n_dims_9, "n_dims 9", &["dimensions"]);
    let set_dims = |d0: u64, d1: u64| {
        mutated(|b| {
            let (_, dims, ..) = tensor_fields(b, "t_f32", 2);
            put_u64(b, dims, d0);
            put_u64(b, dims + 8, d1);
        })
    };
    expect_err(
        set_dims(1 << 40, 1 << 40),
        "dims 2^40 x 2^40",
        &["overflow"],
    );
    expect_err(set_dims(1 << 40, 1 << 22), "byte size 2^64", &["overflow"]);
    expect_err(set_dims(1 << 40, 2), "dim 2^40", &["beyond the end"]);
    expect_err(set_dims(512, 0), "zero dim", &["zero"]);
    let q4_row_500 = mutated(|b| {
        let (_, dims, ..) = tensor_fields(b, "t_q4_0", 2);
        put_u64(b, dims, 500)
    });
    expect_err(q4_row_500, "row not whole blocks", &["multiple"]);
}

#[test]
fn bad_offsets() {
    let set_offset = |f: fn(u64) -> u64| {
        mutated(move |b| {
            let (.., offset) = tensor_fields(b, "t_q6_k", 2);
            let old = u64::from_le_bytes(b[offset..offset + 8].try_into().unwrap());
            put_u64(b, offset, f(old))
        })
    };
    expect_err(
        set_offset(|_| 1 << 20),
        "offset beyond file",
        &["beyond the end"],
    );
    expect_err(
        set_offset(|_| u64::MAX - 31),
        "offset overflow",
        &["overflow"],
    );
    expect_err(set_offset(|o| o + 4), "misaligned offset", &["misaligned"]);
}

#[test]
fn bad_alignment() {
    let mut bytes = fixture_bytes("align64.gguf");
    let at = string_pos(&bytes, "general.alignment") + 8 + 17 + 4;
    put_u32(&mut bytes, at, 48);
    expect_err(bytes.clone(), "alignment 48", &["alignment"]);
    put_u32(&mut bytes, at, 0);
    expect_err(bytes, "alignment 0", &["alignment"]);
}

#[test]
fn unknown_types_open_but_do_not_dequantize() {
    for (id, word) in [(77u32, "77"), (16, "IQ2_XXS")] {
        let bytes = mutated(|b| {
            let (_, _, ty, _) = tensor_fields(b, "t_q4_k", 2);
            put_u32(b, ty, id)
        });
        let f = parse(bytes, "unknown type").expect("a file with an unsupported type still opens");
        let info = f.tensor_info("t_q4_k").unwrap();
        assert_eq!(info.ggml_type, GgmlType::Other(id));
        let err = f.dequantize("t_q4_k").unwrap_err().to_string();
        assert!(
            err.contains(HOSTILE_NAME) && err.contains("t_q4_k") && err.contains(word),
            "{err}"
        );
        assert!(f.dequantize("t_q8_0").is_ok(), "other tensors still load");
    }
}

/// A minimal GGUF with one metadata key whose value is `depth` nested arrays around a u32.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // kvs
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(b"deep");
    b.extend_from_slice(&9u32.to_le_bytes());
    for _ in 1..depth {
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
    }
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&7u32.to_le_bytes());
    b
}

#[test]
fn array_nesting_is_limited() {
    let f = parse(nested_arrays(3), "depth 3").unwrap();
    let mut v = f.meta("deep").unwrap();
    for _ in 0..3 {
        v = &v.as_array().unwrap()[0];
    }
    assert_eq!(v.as_u64(), Some(7));
    assert!(f.tensors.is_empty());
    expect_err(nested_arrays(64), "depth 64", &["nested"]);
}

#[test]
fn random_header_corruption_never_panics() {
    let original = fixture_bytes("all_types.gguf");
    let header_len = GgufFile::from_bytes(original.clone(), Path::new("x"))
        .unwrap()
        .data_start() as usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % header_len as u64) as usize;
            bytes[at] = next() as u8;
        }
        let label = format!("random corruption {case}");
        match parse(bytes, &label) {
            Err(e) => assert!(e.to_string().contains(HOSTILE_NAME), "{label}: {e}"),
            Ok(f) => {
                for t in &f.tensors {
                    let res = catch_unwind(AssertUnwindSafe(|| f.dequantize(&t.name)));
                    assert!(res.is_ok(), "{label}: dequantize of {} panicked", t.name);
                }
            }
        }
    }
}

#[test]
fn open_names_missing_file() {
    let err = GgufFile::open(Path::new("/definitely/not/here.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/definitely/not/here.gguf"), "{err}");
}

// ---------------------------------------------------------------- real model (opt-in)

#[test]
fn real_model_when_memtrain_model_is_set() {
    let Some(path) = std::env::var_os("MEMTRAIN_MODEL") else {
        println!("skipping real-model test: set MEMTRAIN_MODEL to SmolLM2-135M-Instruct.Q4_1.gguf");
        return;
    };
    let start = std::time::Instant::now();
    let f = GgufFile::open(Path::new(&path)).unwrap_or_else(|e| panic!("{e:#}"));
    let opened = start.elapsed();
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.meta_u64("llama.block_count"), Some(30));
    assert_eq!(
        f.meta("tokenizer.ggml.tokens")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        49152
    );
    assert_eq!(f.tensors.len(), 272);

    let start = std::time::Instant::now();
    let mut total = 0usize;
    for t in &f.tensors {
        let (data, shape) = f.dequantize(&t.name).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{}", t.name);
        assert!(
            data.iter().all(|v| v.is_finite()),
            "{}: non-finite value",
            t.name
        );
        total += data.len();
    }
    println!(
        "opened in {opened:?}; dequantized {total} values in {:?}",
        start.elapsed()
    );

    let (embd, shape) = f.dequantize("token_embd.weight").unwrap();
    assert_eq!(shape, [49152, 576]);
    for name in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_norm.weight",
    ] {
        let reference = read_f32s(&fixture_dir().join(format!("real_model/{name}.f32")));
        let (data, _) = if name == "token_embd.weight" {
            (embd.clone(), vec![])
        } else {
            f.dequantize(name).unwrap()
        };
        let ours: Vec<f32> = data[..64]
            .iter()
            .chain(&data[data.len() - 64..])
            .copied()
            .collect();
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * scale,
                "{name}[{i}]: {a} vs gguf-py {b}"
            );
        }
    }
    let _ = gguf::MetaValue::Bool(true); // the module path is part of the public API
}
