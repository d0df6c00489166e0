// Package node holds gardend's roles (nano, master, indexer), the libp2p
// protocols they speak and the messages those protocols carry. Wire messages
// are CBOR structs with integer keys, registered with the codec so that every
// protocol encodes and decodes through one path.
package node
