//! `stack network …`: the host's networks' subcommands.

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network (a bridge with its own subnet)
    Create {
        name: String,
        /// Only `bridge`
        #[arg(short, long)]
        driver: Option<String>,
        /// A subnet in CIDR form (repeat for IPv4 and IPv6)
        #[arg(long)]
        subnet: Vec<String>,
        /// The gateway of the subnet given at the same position
        #[arg(long)]
        gateway: Vec<String>,
        /// Addresses for containers come from this range of the subnet
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// NAME=IP: an address never given to a container
        #[arg(long = "aux-address")]
        aux_address: Vec<String>,
        /// An IPv6 subnet too (a unique-local /64 unless --subnet gives one)
        #[arg(long)]
        ipv6: bool,
        /// No route out of the network
        #[arg(long)]
        internal: bool,
        /// Driver options: mtu, com.docker.network.driver.mtu, com.docker.network.bridge.name
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// List networks
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a network and its containers as JSON
    Inspect { name: String },
    /// Remove networks no container uses
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}
