//! Counting a module's parameters, and those that learn (the bench reports both; layer
//! recomputation skips the layers that have none learning).

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Float parameters of a module: (all elements, elements that get a gradient).
pub fn parameter_counts<M: Module>(module: &M) -> (usize, usize) {
    #[derive(Default)]
    struct Count {
        all: usize,
        trainable: usize,
    }
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            self.all += n;
            if param.is_require_grad() {
                self.trainable += n;
            }
        }
    }
    let mut count = Count::default();
    module.visit(&mut count);
    (count.all, count.trainable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Llama, ModelConfig, random::RandomWeights};

    #[test]
    fn counts_every_weight_once_and_only_the_unfrozen_ones_as_trainable() {
        let mut config = ModelConfig::smollm2_135m();
        (config.vocab_size, config.hidden_size, config.intermediate_size, config.num_layers, config.num_heads, config.num_kv_heads, config.head_dim) = (64, 16, 24, 3, 2, 1, 8);
        let device = Device::flex().autodiff();
        let model = Llama::from_weights(&config, &mut RandomWeights::new(config.clone(), 0), &device).unwrap();
        let (all, trainable) = parameter_counts(&model);
        assert_eq!(all, config.parameter_count());
        assert_eq!(trainable, all);
        let top = crate::train::freeze::freeze_below(model.clone(), 1).unwrap();
        // One layer: q, k, v, o, gate, up, down and two norms; plus the final norm.
        let layer = 16 * 16 + 2 * 16 * 8 + 16 * 16 + 3 * 16 * 24 + 2 * 16;
        assert_eq!(parameter_counts(&top), (all, layer + 16));
        // Rank 2 on all seven projections: r·(in + out) per projection and layer, nothing else.
        let targets = crate::train::lora::TARGETS.iter().map(|(t, _)| t.to_string()).collect();
        let lora = crate::train::lora::attach(model, &crate::train::config::LoraConfig { rank: 2, alpha: 2.0, targets }, 3, 0);
        let adapters = 3 * 2 * ((16 + 16) + 2 * (16 + 8) + (16 + 16) + 2 * (16 + 24) + (24 + 16));
        assert_eq!(parameter_counts(&lora), (all + adapters, adapters));
    }
}
