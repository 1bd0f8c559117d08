//! The sum (and the largest) of one value per unit over a cube, met in shared memory: the
//! reductions our row-per-cube kernels share (RMSNorm's sum of squares, softmax's maxima and
//! denominators).

use cubecl::prelude::*;

/// Every unit of the cube gets the sum of the cube's `value`s (`threads` units per cube). All
/// units must call it (it synchronises the cube).
#[cube]
pub fn cube_sum(value: f32, #[comptime] threads: usize) -> f32 {
    let mut partial = Shared::<[f32]>::new_slice(threads);
    partial[UNIT_POS as usize] = value;
    sync_cube();
    // Tens of values: one unit adds them (the kernels are bound by their launch, not this loop).
    if UNIT_POS == 0 {
        let mut total = f32::new(0.0);
        for t in 0..threads {
            total += partial[t];
        }
        partial[0] = total;
    }
    sync_cube();
    let total = partial[0];
    // Nobody may write `partial` again (a call in a loop) before every unit has read it.
    sync_cube();
    total
}

/// Every unit of the cube gets the largest of the cube's `value`s; as [`cube_sum`], all units
/// must call it.
#[cube]
pub fn cube_max(value: f32, #[comptime] threads: usize) -> f32 {
    let mut partial = Shared::<[f32]>::new_slice(threads);
    partial[UNIT_POS as usize] = value;
    sync_cube();
    if UNIT_POS == 0 {
        let mut largest = partial[0];
        for t in 1..threads {
            largest = largest.max(partial[t]);
        }
        partial[0] = largest;
    }
    sync_cube();
    let largest = partial[0];
    sync_cube();
    largest
}
