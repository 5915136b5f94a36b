//! Docker's multiplexed stream (`application/vnd.docker.multiplexed-stream`):
//! each chunk of a process's output behind an 8-byte header, the stream
//! (0 stdin, 1 stdout, 2 stderr), three zero bytes, and the length (u32,
//! big-endian). A container with a terminal sends its bytes raw instead.

/// Which stream a chunk is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

/// One chunk, framed.
pub fn frame(stream: Stream, bytes: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + bytes.len());
    f.push(stream as u8);
    f.extend_from_slice(&[0, 0, 0]);
    f.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

/// Splits a framed stream back into chunks (for tests and clients): the
/// chunks, and whether the input ended inside a frame.
pub fn split(mut data: &[u8]) -> (Vec<(u8, Vec<u8>)>, bool) {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        if data.len() < 8 + len {
            return (out, true);
        }
        out.push((data[0], data[8..8 + len].to_vec()));
        data = &data[8 + len..];
    }
    (out, !data.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut all = frame(Stream::Stdout, b"hi\n");
        assert_eq!(&all[..8], &[1, 0, 0, 0, 0, 0, 0, 3]);
        all.extend(frame(Stream::Stderr, b""));
        all.extend(frame(Stream::Stderr, b"oops"));
        let (chunks, cut) = split(&all);
        assert!(!cut);
        assert_eq!(
            chunks,
            vec![(1, b"hi\n".to_vec()), (2, vec![]), (2, b"oops".to_vec())]
        );
        assert!(split(&all[..all.len() - 1]).1);
    }
}
