//! Burn's fusion search width is set once per process, before Burn reads its configuration,
//! from MEMTRAIN_FUSION_MAX_BLOCKS. Alone in its own test binary because the configuration
//! (and the environment) is process-global.

#[test]
fn the_fusion_search_width_follows_the_environment_and_is_set_once() {
    // SAFETY: the only test of this binary, before any other thread reads the environment.
    unsafe { std::env::set_var(memtrain::device::FUSION_BLOCKS_ENV, "2") };
    assert_eq!(memtrain::device::configure_fusion(), Some(2));
    assert_eq!(burn::runtime_config().fusion().beam_search.max_blocks, 2);
    // Once set (or read), it stays.
    unsafe { std::env::set_var(memtrain::device::FUSION_BLOCKS_ENV, "4") };
    assert_eq!(memtrain::device::configure_fusion(), None);
    assert_eq!(burn::runtime_config().fusion().beam_search.max_blocks, 2);
}
