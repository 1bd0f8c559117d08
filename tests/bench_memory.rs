//! The memory readings of `memtrain bench train` (issue 7 item 4): the GPU allocator's pools
//! on wgpu (lavapipe in CI) see a tensor the moment it is written, and the CPU backend, which
//! allocates from the process heap, reports none (its figure is the process's peak RSS).

mod common;

use burn::prelude::*;
use memtrain::bench::memory::device_pools_mb;

#[test]
fn wgpu_pools_count_a_new_tensor_and_the_cpu_backend_has_none() {
    assert!(device_pools_mb(&Device::flex()).is_none());
    let Some(device) = common::wgpu_device() else { return };
    let t = Tensor::<2>::ones([1024, 1024], &device); // 4 MiB
    let _ = t.clone().sum().into_scalar::<f32>(); // runs, so the buffer exists
    let (in_use, reserved) = device_pools_mb(&device).expect("wgpu reports its pools");
    let u = Tensor::<2>::ones([2048, 1024], &device); // 8 MiB more, while t is alive
    let _ = u.clone().sum().into_scalar::<f32>();
    let (in_use_after, reserved_after) = device_pools_mb(&device).unwrap();
    assert!(in_use >= 4.0 && reserved >= in_use, "{in_use} MB in use, {reserved} MB reserved");
    assert!(in_use_after - in_use >= 7.9, "in use {in_use} → {in_use_after} MB after an 8 MiB tensor");
    assert!(reserved_after >= in_use_after);
    drop((t, u));
}
