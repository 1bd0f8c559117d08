//! Hugging Face safetensors weights (single file or sharded with `model.safetensors.index.json`),
//! f32 / f16 / bf16, as a `WeightSource`. The `safetensors` crate validates each header against
//! its file (offsets, sizes, dtypes), so a header that lies is an error, not a wild slice.

use crate::model::WeightSource;
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct SafetensorsWeights {
    /// File contents by path; tensors are located through `index`.
    files: BTreeMap<PathBuf, Vec<u8>>,
    index: BTreeMap<String, PathBuf>,
}

impl SafetensorsWeights {
    /// Opens `model.safetensors` or every shard named by `model.safetensors.index.json` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let shards: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).with_context(|| format!("{}: cannot read", index_path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", index_path.display()))?;
            let map = v["weight_map"].as_object().with_context(|| format!("{}: no weight_map object", index_path.display()))?;
            let mut names: Vec<PathBuf> = map.values().filter_map(|f| f.as_str()).map(|f| dir.join(f)).collect();
            names.sort();
            names.dedup();
            names
        } else {
            bail!("{}: no model.safetensors or model.safetensors.index.json", dir.display());
        };
        let mut files = BTreeMap::new();
        let mut index = BTreeMap::new();
        for path in shards {
            let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let st = SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{}: invalid safetensors file: {e}", path.display()))?;
            for name in st.names() {
                index.insert(name.to_string(), path.clone());
            }
            files.insert(path, bytes);
        }
        Ok(SafetensorsWeights { files, index })
    }

    /// Tensor names with their dtype, for `memtrain info`.
    pub fn dtypes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for bytes in self.files.values() {
            if let Ok(st) = SafeTensors::deserialize(bytes) {
                for (_, view) in st.tensors() {
                    *counts.entry(format!("{:?}", view.dtype())).or_insert(0) += 1;
                }
            }
        }
        counts
    }
}

impl WeightSource for SafetensorsWeights {
    fn take(&mut self, name: &str) -> Result<Option<(Vec<f32>, Vec<usize>)>> {
        let Some(path) = self.index.get(name) else { return Ok(None) };
        let bytes = &self.files[path];
        let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let view = st.tensor(name).map_err(|e| anyhow::anyhow!("{}: tensor {name}: {e}", path.display()))?;
        let data = to_f32(view.dtype(), view.data()).with_context(|| format!("{}: tensor {name}", path.display()))?;
        Ok(Some((data, view.shape().to_vec())))
    }
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => bail!("unsupported dtype {other:?} (supported: F32, F16, BF16)"),
    })
}
