package ceremony

import (
	"crypto/rand"
	"fmt"
)

// Shamir secret sharing over GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, one
// byte of the secret at a time. Member i of a gate (1-based) gets the evaluation at x = i of
// a random polynomial of degree k-1 whose constant term is the secret byte. Multiplication
// is a fixed sequence of shifts and masks rather than log/exp tables, so its timing does not
// depend on the secret.

// gfMul multiplies in GF(2^8) in constant time.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		carry := -(a >> 7)
		a = a<<1 ^ 0x1b&carry
		b >>= 1
	}
	return p
}

// gfInv is a^254 = a^-1 (a != 0), by a fixed square-and-multiply chain.
func gfInv(a byte) byte {
	r, base := byte(1), a
	for e := 254; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = gfMul(r, base)
		}
		base = gfMul(base, base)
	}
	return r
}

// split shares secret among n members, any k of which rebuild it. shares[i] belongs to the
// member with x = i+1.
func split(secret []byte, k, n int) ([][]byte, error) {
	if k < 1 || k > n || n > maxGateMembers {
		return nil, fmt.Errorf("split: threshold %d of %d members", k, n)
	}
	coeffs := make([]byte, k) // coeffs[0] is the secret byte, the rest are random
	defer clear(coeffs)
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, len(secret))
	}
	for j, s := range secret {
		coeffs[0] = s
		_, _ = rand.Read(coeffs[1:]) // crypto/rand.Read never fails (it aborts the program instead)
		for i := range shares {
			shares[i][j] = evalPoly(coeffs, byte(i+1))
		}
	}
	return shares, nil
}

// evalPoly evaluates the polynomial with the given coefficients at x (Horner's rule).
func evalPoly(coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = gfMul(y, x) ^ coeffs[i]
	}
	return y
}

// combine interpolates at 0 the shares ys of members xs (distinct, non-zero).
func combine(xs []byte, ys [][]byte) []byte {
	secret := make([]byte, len(ys[0]))
	for j, xj := range xs {
		basis := lagrangeAtZero(xs, j, xj)
		for b := range secret {
			secret[b] ^= gfMul(ys[j][b], basis)
		}
	}
	return secret
}

// lagrangeAtZero is the Lagrange basis polynomial of member j evaluated at 0:
// the product over m != j of x_m / (x_m - x_j); subtraction is XOR in GF(2^8).
func lagrangeAtZero(xs []byte, j int, xj byte) byte {
	basis := byte(1)
	for m, xm := range xs {
		if m != j {
			basis = gfMul(basis, gfMul(xm, gfInv(xm^xj)))
		}
	}
	return basis
}
