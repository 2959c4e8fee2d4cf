// Package tsa owns trusted timestamps: RFC 3161 requests to one or more authorities and token verification.
package tsa
