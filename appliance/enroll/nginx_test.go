package enroll

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
)

// nginxRef starts nginx on loopback with the same CA and client
// certificate verification, answering 204 to every request; it returns
// its URL and stops it when b ends.
func nginxRef(b *testing.B, authority *ca.CA, dir string) (string, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", fmt.Errorf("nginx not installed (apt-get install nginx-light)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	ndir := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(ndir, "tmp"), 0o700)
	sc, err := authority.ServerCert("127.0.0.1")
	if err != nil {
		return "", err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(sc.PrivateKey)
	os.WriteFile(filepath.Join(ndir, "server.pem"), ca.PEM(sc.Certificate[0]), 0o600)
	os.WriteFile(filepath.Join(ndir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(filepath.Join(ndir, "ca.pem"), authority.CertPEM, 0o600)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 12000; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  server {
    listen %[2]s ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate %[1]s/server.pem;
    ssl_certificate_key %[1]s/server.key;
    ssl_client_certificate %[1]s/ca.pem;
    ssl_verify_client on;
    location / { return 204; }
  }
}
`, ndir, addr)
	cfgPath := filepath.Join(ndir, "nginx.conf")
	os.WriteFile(cfgPath, []byte(conf), 0o600)
	cmd := exec.Command(bin, "-c", cfgPath, "-p", ndir, "-e", filepath.Join(ndir, "error.log"))
	if err := cmd.Start(); err != nil {
		return "", err
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
	})
	for range 50 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "https://" + addr, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(ndir, "error.log"))
	return "", fmt.Errorf("nginx did not listen on %s: %s", addr, log)
}
