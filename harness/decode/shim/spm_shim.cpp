// placeholder until the shim lands
extern "C" int parity_spm_abi_version() { return 1; }
