fn main() { print!("{}", mcp_operator::api::crd::to_yaml(&mcp_operator::api::crd::all())); }
