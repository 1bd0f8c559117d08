//! GGUF reader (format versions 2 and 3, little-endian).
//!
//! Guarantees: `GgufFile::open`/`from_bytes` validate every count, length, dimension, type size and
//! offset read from the header against the file size *before* allocating or slicing, so a truncated
//! or hostile file yields an `Err` whose message names the file and the problem — never a panic and
//! never an allocation much larger than the file. Once a `GgufFile` exists, every tensor of a known
//! ggml type lies inside the file at an aligned offset, so `tensor_bytes` cannot fail.
//! Tensors of types this crate cannot size (`GgmlType::Other` with an unknown id) still open; only
//! dequantizing them is an error.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::checkpoint::dequant;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;
/// GGUF allows arrays of arrays; real files never nest deeper than 1, so a deep nest is hostile.
const MAX_ARRAY_DEPTH: usize = 4;
/// Smallest possible tensor-info record: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;
/// Smallest possible key/value record: key length (8) + value type (4) + a 1-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Arrays are pre-allocated at most this many elements; beyond that the Vec grows with what is
/// actually parsed, so a lying count cannot reserve memory the file does not back.
const MAX_PREALLOC: usize = 1 << 16;

/// One metadata value. Strings are UTF-8 in valid files; invalid bytes become U+FFFD.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// Any integer type that fits in a u64 (negative values and bools give `None`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any number, integer or float (bools give `None`).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v as f64),
            MetaValue::I64(v) => Some(v as f64),
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A ggml tensor element type. Ids are ggml's `enum ggml_type`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    /// Any other id. Ids ggml knows (IQ*, Q8_K, I32, ...) still get a name and sizes so files
    /// holding them can be opened and validated; they just cannot be dequantized.
    Other(u32),
}

/// (id, name, block size, bytes per block) for ggml types without their own variant,
/// copied from gguf-py's `GGML_QUANT_SIZES`.
const OTHER_TYPES: &[(u32, &str, usize, usize)] = &[
    (9, "Q8_1", 32, 40),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    pub fn id(&self) -> u32 {
        match *self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    fn other_entry(id: u32) -> Option<&'static (u32, &'static str, usize, usize)> {
        OTHER_TYPES.iter().find(|e| e.0 == id)
    }

    /// ggml's name ("Q4_K", "IQ2_XXS", ...), or "unknown ggml type <id>".
    pub fn name(&self) -> String {
        match *self {
            GgmlType::Other(id) => match Self::other_entry(id) {
                Some(e) => e.1.to_string(),
                None => format!("unknown ggml type {id}"),
            },
            known => format!("{known:?}"),
        }
    }

    /// Elements per block (1 for plain float types); `None` for an unknown id.
    pub fn block_size(&self) -> Option<usize> {
        Some(match *self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                256
            }
            GgmlType::Other(id) => Self::other_entry(id)?.2,
        })
    }

    /// Bytes per block; `None` for an unknown id.
    pub fn type_size(&self) -> Option<usize> {
        Some(match *self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q2_K => 84,
            GgmlType::Q3_K => 110,
            GgmlType::Q4_K => 144,
            GgmlType::Q5_K => 176,
            GgmlType::Q6_K => 210,
            GgmlType::Other(id) => Self::other_entry(id)?.3,
        })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` (ne0) varies fastest.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Checked at open time; saturating keeps a hand-made TensorInfo from panicking.
        self.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// Row-major shape (reversed dims): a Hugging Face Linear weight reads `[out, in]`.
    pub fn shape_row_major(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Size of the tensor data in bytes; `None` for unknown types or sizes that overflow.
    pub fn byte_len(&self) -> Option<u64> {
        let block = self.ggml_type.block_size()? as u64;
        let size = self.ggml_type.type_size()? as u64;
        (self.n_elements() / block).checked_mul(size)
    }
}

pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub alignment: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    bytes: Vec<u8>,
    data_start: u64,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("file_bytes", &self.bytes.len())
            .finish()
    }
}

impl GgufFile {
    /// Reads and validates the whole file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow!("GGUF file {}: cannot read: {e}", path.display()))?;
        Self::from_bytes(bytes, path)
    }

    /// Parses and validates `bytes`; `path` is only used in error messages.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        // Inner errors carry a context chain; flatten it into one line that starts with the file.
        let header =
            parse_header(&bytes).map_err(|e| anyhow!("GGUF file {}: {e:#}", path.display()))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            version: header.version,
            alignment: header.alignment,
            metadata: header.metadata,
            tensors: header.tensors,
            bytes,
            data_start: header.data_start,
        })
    }

    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta(key)?.as_str()
    }

    pub fn meta_u64(&self, key: &str) -> Option<u64> {
        self.meta(key)?.as_u64()
    }

    pub fn meta_f64(&self, key: &str) -> Option<f64> {
        self.meta(key)?.as_f64()
    }

    pub fn meta_bool(&self, key: &str) -> Option<bool> {
        self.meta(key)?.as_bool()
    }

    /// `general.architecture`, e.g. "llama".
    pub fn architecture(&self) -> Option<&str> {
        self.meta_str("general.architecture")
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute file offset where the data section starts.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// The raw bytes of a tensor. Empty for a type of unknown size, or for an info that does not
    /// describe a tensor of this file (bounds were checked at open time for the file's own infos).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let range = || {
            let start = usize::try_from(self.data_start.checked_add(info.offset)?).ok()?;
            let len = usize::try_from(info.byte_len()?).ok()?;
            self.bytes.get(start..start.checked_add(len)?)
        };
        range().unwrap_or(&[])
    }

    /// Dequantizes a tensor to f32; returns the data and its row-major shape.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let info = self.tensor_info(name).ok_or_else(|| {
            anyhow!(
                "GGUF file {}: no tensor named '{name}'",
                self.path.display()
            )
        })?;
        let fail = |e: anyhow::Error| {
            anyhow!(
                "GGUF file {}: cannot dequantize tensor '{name}' of type {}: {e:#}",
                self.path.display(),
                info.ggml_type.name()
            )
        };
        let n = usize::try_from(info.n_elements()).map_err(|e| fail(e.into()))?;
        let data = dequant::dequantize(info.ggml_type, self.tensor_bytes(info), n).map_err(fail)?;
        Ok((data, info.shape_row_major()))
    }
}

/// Everything `from_bytes` learns from the header.
struct Header {
    version: u32,
    alignment: u64,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.is_empty() {
        bail!("file is empty, not a GGUF file");
    }
    let mut cur = Cursor { bytes, pos: 0 };
    let version = read_preamble(&mut cur)?;
    let tensor_count = cur.u64().context("reading tensor count")?;
    let kv_count = cur.u64().context("reading metadata count")?;
    check_counts(&cur, tensor_count, kv_count)?;

    let metadata = read_metadata(&mut cur, kv_count)?;
    let alignment = alignment_of(&metadata)?;
    let tensors = read_tensor_infos(&mut cur, tensor_count)?;
    let data_start = align_up(cur.pos as u64, alignment)
        .ok_or_else(|| anyhow!("data section offset overflows"))?;
    for info in &tensors {
        check_tensor(info, alignment, data_start, bytes.len() as u64)
            .with_context(|| format!("tensor '{}'", info.name))?;
    }
    Ok(Header {
        version,
        alignment,
        metadata,
        tensors,
        data_start,
    })
}

fn read_preamble(cur: &mut Cursor) -> Result<u32> {
    let magic = cur.take(4).context("reading magic")?;
    if magic != MAGIC {
        bail!("bad magic {magic:02x?} (expected \"GGUF\"), not a GGUF file");
    }
    let version = cur.u32().context("reading version")?;
    match version {
        2 | 3 => Ok(version),
        1 => bail!("GGUF version 1 is not supported (only versions 2 and 3)"),
        v if matches!(v.swap_bytes(), 2 | 3) => {
            bail!("unsupported version {v:#x}: big-endian GGUF files are not supported")
        }
        v => bail!("unsupported GGUF version {v} (only versions 2 and 3)"),
    }
}

/// Every record takes some bytes, so counts the remaining bytes cannot hold are lies.
fn check_counts(cur: &Cursor, tensor_count: u64, kv_count: u64) -> Result<()> {
    let left = cur.remaining();
    if kv_count > left / MIN_KV_BYTES {
        bail!("metadata count {kv_count} is too large for the {left} bytes left in the file");
    }
    if tensor_count > left / MIN_TENSOR_INFO_BYTES {
        bail!("tensor count {tensor_count} is too large for the {left} bytes left in the file");
    }
    if kv_count * MIN_KV_BYTES + tensor_count * MIN_TENSOR_INFO_BYTES > left {
        bail!(
            "tensor count {tensor_count} and metadata count {kv_count} are too large for the {left} bytes left in the file"
        );
    }
    Ok(())
}

fn read_metadata(cur: &mut Cursor, kv_count: u64) -> Result<BTreeMap<String, MetaValue>> {
    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = cur
            .string()
            .with_context(|| format!("reading key of metadata entry {i}"))?;
        let value = cur
            .value_with_type(0)
            .with_context(|| format!("reading metadata '{key}'"))?;
        if metadata.insert(key.clone(), value).is_some() {
            bail!("duplicate metadata key '{key}'");
        }
    }
    Ok(metadata)
}

/// `general.alignment` (default 32) must be a power of two, as in ggml.
fn alignment_of(metadata: &BTreeMap<String, MetaValue>) -> Result<u64> {
    let Some(value) = metadata.get("general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match value.as_u64() {
        Some(a) if a.is_power_of_two() => Ok(a),
        _ => bail!("invalid general.alignment {value:?}: must be a power of two"),
    }
}

fn read_tensor_infos(cur: &mut Cursor, tensor_count: u64) -> Result<Vec<TensorInfo>> {
    // tensor_count was checked against the remaining bytes, so this reservation is file-backed.
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut seen = HashSet::new();
    for i in 0..tensor_count {
        let info = read_tensor_info(cur).with_context(|| format!("reading tensor info {i}"))?;
        if !seen.insert(info.name.clone()) {
            bail!("duplicate tensor name '{}'", info.name);
        }
        tensors.push(info);
    }
    Ok(tensors)
}

fn read_tensor_info(cur: &mut Cursor) -> Result<TensorInfo> {
    let name = cur.string().context("reading name")?;
    let ctx = || format!("tensor '{name}'");
    let n_dims = cur.u32().with_context(ctx)?;
    if n_dims > MAX_DIMS {
        bail!("tensor '{name}' has {n_dims} dimensions (n_dims at most {MAX_DIMS})");
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(cur.u64().with_context(ctx)?);
    }
    let ggml_type = GgmlType::from_id(cur.u32().with_context(ctx)?);
    let offset = cur.u64().with_context(ctx)?;
    check_dims(&name, &dims)?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
    })
}

fn check_dims(name: &str, dims: &[u64]) -> Result<()> {
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        bail!("tensor '{name}' has dimension {i} equal to zero (dims {dims:?})");
    }
    let n = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| anyhow!("tensor '{name}' element count overflows (dims {dims:?})"))?;
    // Keep element counts addressable (ggml also requires them to fit an int64).
    if n > i64::MAX as u64 || usize::try_from(n).is_err() {
        bail!("tensor '{name}' element count {n} overflows (dims {dims:?})");
    }
    Ok(())
}

/// Block divisibility, alignment and bounds of one tensor's data.
fn check_tensor(info: &TensorInfo, alignment: u64, data_start: u64, file_len: u64) -> Result<()> {
    let ty = info.ggml_type;
    if let Some(block) = ty.block_size() {
        // Blocks never straddle rows, so the row length (ne0) must be a whole number of blocks.
        let row = info.dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block as u64) {
            bail!(
                "row length {row} is not a multiple of the {} block size {block}",
                ty.name()
            );
        }
    }
    if !info.offset.is_multiple_of(alignment) {
        bail!(
            "offset {} is misaligned (not a multiple of alignment {alignment})",
            info.offset
        );
    }
    let start = data_start
        .checked_add(info.offset)
        .ok_or_else(|| anyhow!("offset {} overflows", info.offset))?;
    let len = match (ty.type_size(), info.byte_len()) {
        (Some(_), Some(len)) => len,
        (Some(_), None) => bail!(
            "byte size overflows (dims {:?}, type {})",
            info.dims,
            ty.name()
        ),
        (None, _) => 0, // unknown type: only the start can be checked
    };
    let end = start
        .checked_add(len)
        .ok_or_else(|| anyhow!("data end overflows"))?;
    if end > file_len {
        bail!(
            "data at offset {} ({len} bytes) extends beyond the end of the file (data section starts at {data_start}, file is {file_len} bytes)",
            info.offset
        );
    }
    Ok(())
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    Some(x.checked_add(alignment - 1)? / alignment * alignment)
}

/// Bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > self.remaining() {
            bail!(
                "file is truncated: need {n} bytes at offset {} but only {} remain",
                self.pos,
                self.remaining()
            );
        }
        let slice = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self
            .take(N as u64)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String> {
        let at = self.pos;
        let len = self.u64()?;
        if len > self.remaining() {
            bail!(
                "string length {len} at offset {at} is larger than the {} bytes left in the file",
                self.remaining()
            );
        }
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// A value preceded by its u32 type tag.
    fn value_with_type(&mut self, depth: usize) -> Result<MetaValue> {
        let ty = self.u32()?;
        self.value(ty, depth)
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.u8()?),
            1 => MetaValue::I8(self.u8()? as i8),
            2 => MetaValue::U16(self.u16()?),
            3 => MetaValue::I16(self.u16()? as i16),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(self.u32()? as i32),
            6 => MetaValue::F32(f32::from_bits(self.u32()?)),
            7 => MetaValue::Bool(self.u8()? != 0),
            8 => MetaValue::Str(self.string()?),
            9 => self.meta_array(depth)?,
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(self.u64()? as i64),
            12 => MetaValue::F64(f64::from_bits(self.u64()?)),
            other => bail!("unknown metadata value type {other}"),
        })
    }

    fn meta_array(&mut self, depth: usize) -> Result<MetaValue> {
        if depth >= MAX_ARRAY_DEPTH {
            bail!("metadata arrays nested deeper than {MAX_ARRAY_DEPTH} levels");
        }
        let elem_ty = self.u32()?;
        let at = self.pos;
        let count = self.u64()?;
        let min = min_value_bytes(elem_ty)?;
        if count > self.remaining() / min {
            bail!(
                "array length {count} at offset {at} is too large for the {} bytes left in the file",
                self.remaining()
            );
        }
        let mut items = Vec::with_capacity((count as usize).min(MAX_PREALLOC));
        for _ in 0..count {
            items.push(self.value(elem_ty, depth + 1)?);
        }
        Ok(MetaValue::Array(items))
    }
}

/// Fewest bytes a value of GGUF type `ty` can occupy (an empty string still has its length).
fn min_value_bytes(ty: u32) -> Result<u64> {
    Ok(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10 | 11 | 12 => 8,
        9 => 12, // element type + count
        other => bail!("unknown metadata array element type {other}"),
    })
}
