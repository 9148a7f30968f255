//! What every decoder target checks besides "does not panic": a decoder fed the input in two
//! chunks, cut where the input's first two bytes say, gives what it gives fed the input whole.
//! HTTP bodies and files arrive in arbitrary chunks, so a difference is a bug.

use std::fmt::Debug;

use firesight_core::decode::StreamDecoder;

/// Splits `data` into a cut position (its first two bytes) and the input itself.
pub fn cut_and_input(data: &[u8]) -> Option<(usize, &[u8])> {
    let (head, input) = data.split_first_chunk::<2>()?;
    let cut = usize::from(u16::from_le_bytes(*head)) % (input.len() + 1);
    Some((cut, input))
}

/// Decodes `chunks` in order with a fresh decoder: every item or refusal (as text, so a NaN
/// compares equal to itself), and the error that stopped the input, if one did.
pub fn decode_chunks<D: StreamDecoder + Default>(chunks: &[&[u8]]) -> (Vec<String>, Option<String>)
where
    D::Item: Debug,
{
    let mut decoder = D::default();
    let mut out = Vec::new();
    let mut stopped = None;
    for chunk in chunks {
        if let Err(error) = decoder.push(chunk, &mut out) {
            stopped = Some(format!("{error:?}"));
            break;
        }
    }
    if stopped.is_none()
        && let Err(error) = decoder.finish(&mut out)
    {
        stopped = Some(format!("{error:?}"));
    }
    (out.iter().map(|d| format!("{d:?}")).collect(), stopped)
}

/// Fails when `D` decodes `data` differently whole and in two chunks.
pub fn chunking_does_not_matter<D: StreamDecoder + Default>(data: &[u8])
where
    D::Item: Debug,
{
    let Some((cut, input)) = cut_and_input(data) else {
        return;
    };
    let whole = decode_chunks::<D>(&[input]);
    let parts = decode_chunks::<D>(&[&input[..cut], &input[cut..]]);
    assert_eq!(whole, parts, "decoded differently when cut at byte {cut}");
}
