//! Writes a pcap of PCMU RTP for SIPp's `play_pcap_audio` in bench/: a continuous 440 Hz tone,
//! or with `talk`, 1 s of tone ("speech") in every 4 s, so a model sees turns.
//! Usage: `cargo run --example gen_pcap -- OUT.pcap MILLISECONDS [talk]`

#[path = "../tests/common/pcap.rs"]
mod pcap;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(ms)) = (args.get(1), args.get(2).and_then(|m| m.parse::<u32>().ok()))
    else {
        eprintln!("usage: gen_pcap OUT.pcap MILLISECONDS");
        return std::process::ExitCode::from(2);
    };
    let pcm = if args.get(3).is_some_and(|a| a == "talk") {
        let mut pcm = Vec::new();
        while (pcm.len() as u32) < ms * 8 {
            pcm.extend(pcap::silence(1500));
            pcm.extend(pcap::tone(440.0, 1000, 8000));
            pcm.extend(pcap::silence(1500));
        }
        pcm.truncate(ms as usize * 8);
        pcm
    } else {
        pcap::tone(440.0, ms, 8000)
    };
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
