// Package archive owns the election archive and the destruction certificate: the one sealed
// file that keeps an election after its end (configuration, roll and rectifications,
// émargement, ballots, register, minutes), written as a stream inside the backup package's
// encrypted, checksummed framing with a manifest of every member's SHA-256 and checked
// offline; and the signed record (PV de destruction) of the data's destruction.
package archive
