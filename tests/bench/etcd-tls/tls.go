// tls.go - TLS for ../shared/bench-etcd's load generator (tests/bench/vs-etcd.sh, VS_ETCD_TLS=1).
//
// vs-etcd.sh builds this file beside a copy of the shared generator's main.go, whose one
// clientv3.Config literal it rewrites into a call of clientConfig: the generator is otherwise
// the same program, with --cacert, --cert and --key (etcdctl's names) added.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/clientv3"
)

var (
	caFile   = flag.String("cacert", "", "CA of the members' certificates (TLS)")
	certFile = flag.String("cert", "", "client certificate (TLS)")
	keyFile  = flag.String("key", "", "its private key (TLS)")
)

// clientConfig is the shared generator's configuration, with TLS when --cacert is given.
func clientConfig(endpoints []string) clientv3.Config {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second}
	if *caFile == "" {
		return cfg
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "no certificate in", *caFile)
		os.Exit(1)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = tc
	for i, e := range endpoints {
		cfg.Endpoints[i] = "https://" + e
	}
	return cfg
}
