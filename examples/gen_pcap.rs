//! Writes a pcap of PCMU RTP carrying a 440 Hz tone, for SIPp's `play_pcap_audio` in bench/.
//! Usage: `cargo run --example gen_pcap -- OUT.pcap MILLISECONDS`

#[path = "../tests/common/pcap.rs"]
mod pcap;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(ms)) = (args.get(1), args.get(2).and_then(|m| m.parse::<u32>().ok()))
    else {
        eprintln!("usage: gen_pcap OUT.pcap MILLISECONDS");
        return std::process::ExitCode::from(2);
    };
    let pcm = pcap::tone(440.0, ms, 8000);
    match pcap::write_rtp_pcap(std::path::Path::new(out), 0, &pcap::ulaw(&pcm), 160) {
        Ok(n) => {
            eprintln!("{out}: {n} RTP packets");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{out}: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
