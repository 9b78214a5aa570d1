package drive

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// nsBlobs is crypto.namespace('hyperdrive', 1)[0], mixed into the blobs
// core's signer namespaces so the blobs core gets a key of its own while
// being signed by the db's key pair.
var nsBlobs = merkle.Namespace("hyperdrive", 1)[0]

// ErrNoBlobsKey is returned when a drive names no blobs core: a compat db
// core whose header has no contentFeed.
var ErrNoBlobsKey = errors.New("drive: no blobs core key: compat db without a contentFeed")

// BlobsManifest derives the blobs core's manifest from the db core's, as
// Hyperdrive 13 does (generateContentManifest): same version, quorum,
// allowPatch and signer keys, each signer namespace replaced by
// BLAKE2b-256(NS_BLOBS ‖ dbKey ‖ namespace), and no prologue. It returns
// nil for version-0 manifests, for which Node derives nothing either.
func BlobsManifest(db *wire.Manifest, dbKey [32]byte) *wire.Manifest {
	if db == nil || db.Version < 1 {
		return nil
	}
	m := &wire.Manifest{
		Version:    db.Version,
		Hash:       wire.HashBlake2b,
		AllowPatch: db.AllowPatch,
		Quorum:     db.Quorum,
		Signers:    make([]wire.Signer, len(db.Signers)),
	}
	for i, s := range db.Signers {
		h, _ := blake2b.New256(nil)
		h.Write(nsBlobs[:])
		h.Write(dbKey[:])
		h.Write(s.Namespace[:])
		s.Namespace = [32]byte(h.Sum(nil))
		m.Signers[i] = s
	}
	return m
}

// BlobsKey returns the key of the blobs core that holds a drive's file
// contents, given its db core: the header's contentFeed for old and compat
// drives, otherwise the hash of the manifest BlobsManifest derives.
// dbManifest is nil for a compat db core.
func BlobsKey(ctx context.Context, db bee.Core, dbKey [32]byte, dbManifest *wire.Manifest) ([32]byte, error) {
	var key [32]byte
	if db.Length() > 0 {
		h, err := bee.New(db, nil).Header(ctx)
		if err != nil {
			return key, fmt.Errorf("drive: blobs key: %w", err)
		}
		if h.Metadata != nil && h.Metadata.ContentFeed != nil {
			if len(h.Metadata.ContentFeed) < 32 {
				return key, fmt.Errorf("drive: blobs key: contentFeed of %d bytes", len(h.Metadata.ContentFeed))
			}
			return [32]byte(h.Metadata.ContentFeed[:32]), nil
		}
	}
	m := BlobsManifest(dbManifest, dbKey)
	if m == nil {
		return key, ErrNoBlobsKey
	}
	key, err := merkle.ManifestHash(m)
	if err != nil {
		return key, fmt.Errorf("drive: blobs key: %w", err)
	}
	return key, nil
}

// DBCore is a db core that knows its own key and manifest, as
// hyper/core's cores do.
type DBCore interface {
	bee.Core
	Key() [32]byte
	// Manifest is nil for a compat core.
	Manifest() *wire.Manifest
}

// BlobsKeyOf is BlobsKey for a core that knows its key and manifest.
func BlobsKeyOf(ctx context.Context, db DBCore) ([32]byte, error) {
	return BlobsKey(ctx, db, db.Key(), db.Manifest())
}
