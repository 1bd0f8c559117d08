//! A loaded model on a device with its tokenizer: the one object the CLI, the app's worker and
//! the benchmarks use to turn text into text.

use crate::checkpoint::{self, LoadedModel, chat_template::{ChatMessage, render_chat}};
use crate::device::{self, DeviceChoice, DeviceInfo};
use crate::generate::{self, Generation, SamplingParams, TokenEvent};
use anyhow::Result;
use burn::prelude::*;
use std::path::Path;

pub struct Session {
    pub loaded: LoadedModel,
    pub device: Device,
    pub device_info: DeviceInfo,
}

impl Session {
    /// Loads `model` (or the default model) on the chosen device.
    pub fn open(model: Option<&Path>, choice: DeviceChoice) -> Result<Self> {
        Self::open_with(model, choice, false)
    }

    /// [`Session::open`], in half precision when `f16` ([`device::use_f16`]: every float tensor
    /// on wgpu, the decode kernels' weight copy on the CPU).
    pub fn open_with(model: Option<&Path>, choice: DeviceChoice, f16: bool) -> Result<Self> {
        let path = checkpoint::default_model::resolve(model)?;
        let (device, device_info) = device::select(choice)?;
        let half = if f16 { Some(device::use_f16(&device, &device_info)?) } else { None };
        let mut loaded = checkpoint::load(&path, &device)?;
        if half == Some(device::HalfPrecision::DecodePanels) {
            loaded.use_f16_decode_panels();
        }
        Ok(Session { loaded, device, device_info })
    }

    /// Renders one user message (and an optional system message) with the model's template.
    pub fn chat_prompt(&self, history: &[ChatMessage]) -> Result<String> {
        let t = &self.loaded.tokenizer;
        render_chat(t.chat_template.as_deref(), history, true, &t.bos_token, &t.eos_token)
    }

    /// Token ids of a prompt. Chat prompts already carry their special tokens.
    pub fn encode_prompt(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        self.loaded.tokenizer.encode(text, !chat)
    }

    /// Generates for several prompts at once, streaming tokens to `on_token`.
    pub fn generate_ids(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
    ) -> Result<Vec<Generation>> {
        let stop = &self.loaded.tokenizer.stop_ids;
        generate::generate(&self.loaded.model, self.loaded.packed(), &self.loaded.inv_freq, prompts, params, stop, on_token)
    }

    /// Text of generated tokens, special tokens removed.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.loaded.tokenizer.decode(ids, true)
    }
}
