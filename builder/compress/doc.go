// Package compress turns a finished raw disk image into what a user
// downloads and flashes: the image compressed with xz (XZ), its block map
// for bmaptool and applbuild flash (MakeBmap, format 2.0), and a SHA256SUMS
// file that `sha256sum -c` checks (WriteSums).
//
// Images are sparse. DataExtents finds their data with SEEK_DATA/SEEK_HOLE,
// and NewSparseReader reads only those, producing the holes as zeros
// without asking the filesystem for them: what xz compresses is the image
// byte for byte, and what the bmap maps is what the image holds.
package compress
