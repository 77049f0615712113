// Package keys encrypts patient identity with a data key per patient and
// implements vigil.PatientStore on top of a store that keeps only the
// ciphertext (vigil.IdentityStore), so that every store backend gets the
// same encryption.
//
// Each patient's data key (32 random bytes, AES-256-GCM) seals their
// identity — name, birth date, MRN — and is kept beside it wrapped by a
// key-encryption key (KEK). A KEK is a KEK implementation: a key file
// (FileKEK, the default, in the data directory or where --kek-file says)
// or a key management service behind the same interface. MRN lookups use
// a keyed blind index: HMAC-SHA256 under a site key that is itself wrapped
// by the KEK, so the store can match an MRN without holding it.
//
// Erasing a patient destroys their wrapped data key (crypto-shredding):
// every copy of their sealed identity is unreadable from then on. Rotating
// the KEK (Rotate) re-wraps every data key under a new KEK version while
// the node runs: wrapped keys name their KEK version, and FileKEK re-reads
// its file when it changes, so the node learns of the new version at its
// next wrap or when it meets a key wrapped by it.
package keys
