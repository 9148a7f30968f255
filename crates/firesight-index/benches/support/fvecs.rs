//! The TEXMEX `.fvecs` framing (each row: its width as a little-endian `u32`, then that many
//! little-endian `f32`s), read by the index benchmark and the engine example alike. A file that
//! ends inside a row is refused, not read past.

use std::io::{Error, ErrorKind};
use std::path::Path;

/// Every row of an `.fvecs` file (`.ivecs` has the same framing; its cells come back as the
/// `f32`s with their bit patterns, for the caller to reinterpret).
pub fn read_fvecs(path: &Path) -> std::io::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some((width, after)) = rest.split_first_chunk::<4>() {
        let row = (u32::from_le_bytes(*width) as usize)
            .checked_mul(4)
            .and_then(|len| after.get(..len))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidData,
                    format!("{}: row {} ends past the file", path.display(), out.len()),
                )
            })?;
        out.push(
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        rest = &after[row.len()..];
    }
    Ok(out)
}
