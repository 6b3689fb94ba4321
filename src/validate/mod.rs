//! Validators: decide whether a Hyperscan hit is really a CNIC or a card number.
//! CONTRACT STUB — helper A implements.
